using Pippy;
using Pippy.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PippyTrainer;

/// <summary>
/// A small regression network cut into 4 pipeline stages, one per MPI rank. Each [SplitEnd] layer ends a stage right
/// after the statement of forward that calls it; what follows the last one is the last stage. The generator checks the
/// cut and the 1F1B schedule at build time: a mistake is a build error, not a hang.
/// </summary>
[Pipeline(Schedule = ScheduleKind.OneFOneB, Microbatches = 4)]
public sealed partial class Regressor : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Linear input;     // stage 0 (rank 0)
    [SplitEnd] private readonly Linear hidden1;   // stage 1 (rank 1)
    [SplitEnd] private readonly Linear hidden2;   // stage 2 (rank 2)
    private readonly Linear output;               // stage 3 (rank 3)

    public Regressor(int features, int width) : base(nameof(Regressor))
    {
        input = Linear(features, width);
        hidden1 = Linear(width, width);
        hidden2 = Linear(width, width);
        output = Linear(width, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = functional.relu(input.forward(x));
        x = functional.relu(hidden1.forward(x));
        x = functional.relu(hidden2.forward(x));
        return output.forward(x);
    }
}
