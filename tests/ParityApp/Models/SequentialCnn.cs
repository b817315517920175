using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A VGG-style CNN in TorchSharp's style: one Sequential of named children run by forward, divided into three stages
/// of contiguous children by parameter count; the stages keep the model's parameter names (layers.conv1.weight).
/// </summary>
[Pipeline(Schedule = Pippy.Schedules.ScheduleKind.OneFOneB, Microbatches = 3)]
public sealed partial class SequentialCnn : Module<Tensor, Tensor>
{
    [SplitInto(3)] private readonly Sequential layers = Sequential(
        ("conv1", Conv2d(3, 8, 3, padding: 1)),
        ("relu1", ReLU()),
        ("pool1", MaxPool2d(2)),
        ("conv2", Conv2d(8, 16, 3, padding: 1)),
        ("relu2", ReLU()),
        ("pool2", MaxPool2d(2)),
        ("flatten", Flatten()),
        ("fc1", Linear(16 * 2 * 2, 32)),
        ("relu3", ReLU()),
        ("fc2", Linear(32, 10)));

    public SequentialCnn() : base(nameof(SequentialCnn)) => RegisterComponents();

    public override Tensor forward(Tensor x) => layers.forward(x);
}
