using System;
using System.Linq;
using Pippy.Runtime;
using Quickstart;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// The same program runs on every rank: mpiexec -n 3 dotnet run --project samples/Quickstart
// Options: --microbatches N (default 64), --batch B (default 256),
//          --fail-on-rank R (rank R throws before the training step: shows that one failing rank ends the whole job).
using var mpi = PipelineEnvironment.Start(ref args);
int microbatches = Option(args, "--microbatches", 64);
int batch = Option(args, "--batch", 256);

torch.manual_seed(0);
var model = new MyNetwork(512);
torch.manual_seed(1);
var x = torch.randn(batch, 512);
var target = torch.randn(batch, 256);

using var pipe = MyNetwork.Pipeline.Build(model, mpi, new PipelineOptions { Microbatches = microbatches });
Tensor? y = pipe.Forward(x);                                                                     // last stage's rank only
if (mpi.Rank == Option(args, "--fail-on-rank", -1))
    throw new InvalidOperationException($"failure injected on rank {mpi.Rank} (--fail-on-rank) while the other ranks wait for it");
Tensor loss = pipe.Step(x, target, (o, t) => functional.mse_loss(o, t, Reduction.Sum));         // every rank

// The same model in one process, same seed: forward, loss, one full-batch backward.
torch.manual_seed(0);
var reference = new MyNetwork(512);
Tensor referenceOutput;
using (torch.no_grad()) referenceOutput = reference.forward(x);
var referenceLoss = functional.mse_loss(reference.forward(x), target, Reduction.Sum);
referenceLoss.backward();

string who = $"[rank {mpi.Rank} stage {pipe.Stage.Index}]";
bool ok = true;
if (y is not null) ok &= Compare(who, "forward output", y, referenceOutput);
ok &= Compare(who, "loss", loss, referenceLoss.detach());
var referenceParameters = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter);
foreach (var (name, parameter) in pipe.Stage.named_parameters())
    ok &= Compare(who, $"grad {name}", parameter.grad!, referenceParameters[name].grad!);

bool all = mpi.AllTrue(ok);
if (mpi.Rank == 0) Console.WriteLine(all ? "PASS: outputs, loss and every gradient match the model run in one process" : "FAIL: see MISMATCH lines above");
return all ? 0 : 1;

// allclose with rtol 1e-5; the absolute tolerance is 1e-5 of the reference's largest magnitude, since summing
// microbatches reorders float additions.
static bool Compare(string who, string what, Tensor actual, Tensor expected)
{
    double maxDiff = (actual - expected).abs().max().item<float>();
    double scale = expected.abs().max().item<float>();
    bool close = actual.shape.SequenceEqual(expected.shape) && actual.allclose(expected, rtol: 1e-5, atol: 1e-5 * Math.Max(scale, 1e-12));
    Console.WriteLine($"{who} {what}: max |diff| {maxDiff:E2} (max |ref| {scale:E2}) {(close ? "ok" : "MISMATCH")}");
    return close;
}

static int Option(string[] args, string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int value) ? value : fallback;
}
