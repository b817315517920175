using System;
using System.IO;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// Training on 4 ranks: mpiexec -n 4 dotnet run --project samples/Training -- [--mode pp4|dp2xpp2] [--steps N] [--checkpoint DIR]
//   pp4      one pipeline of 4 stages (1F1B)
//   dp2xpp2  two data-parallel pipelines of 2 stages each
// Learns to predict the next token of fixed random sequences; prints the loss of each step; writes a checkpoint.
// The loss is the mean over tokens (LossReduction.Mean), so both modes take the same steps on the same batch.
using var mpi = PipelineEnvironment.Start(ref args);
string mode = Option(args, "--mode") ?? "pp4";
int steps = int.Parse(Option(args, "--steps") ?? "8");
string checkpoint = Option(args, "--checkpoint") ?? Path.Combine(Path.GetTempPath(), $"pippy-training-{mode}");
const int Vocabulary = 64, Width = 32, Depth = 4, Context = 16, Batch = 16;

torch.manual_seed(0);
var data = randint(0, Vocabulary, new long[] { Batch, Context + 1 });      // the same sequences on every rank
var (inputs, targets) = (data[.., ..Context], data[.., 1..]);

// Every rank builds the model on the meta device (no memory for weights) and gives memory and values only to its own
// stages. Values are seeded by each tensor's name, so both layouts start from the same weights; the constructor's own
// initialization of the embedding (GPT's std 0.02) is not kept on meta, so it is repeated here.
var initialization = WeightInitialization.Seeded(0, (name, owner, tensor) =>
{
    if (name != "tokens.weight") return false;                             // every other tensor: its layer's default
    init.normal_(tensor, std: 0.02);
    return true;
});
PipelineRunner<Tensor> pipe = mode switch
{
    "pp4" => LanguageModel4.Pipeline.Build(LazyModel.Construct(() => new LanguageModel4(Vocabulary, Width, Depth)), mpi,
        new PipelineOptions { LossReduction = LossReduction.Mean, Initialization = initialization }),
    "dp2xpp2" => LanguageModel2.Pipeline.Build(LazyModel.Construct(() => new LanguageModel2(Vocabulary, Width, Depth)), mpi,
        new PipelineOptions { DataParallel = 2, LossReduction = LossReduction.Mean, Initialization = initialization }),
    _ => throw new ArgumentException($"--mode {mode}: use pp4 or dp2xpp2"),
};
using var _ = pipe;
var optimizer = optim.AdamW(pipe.Parameters(), 3e-3);

for (int step = 1; step <= steps; step++)
{
    optimizer.zero_grad();
    var loss = pipe.Step(inputs, targets, (logits, t) => functional.cross_entropy(logits.reshape(-1, Vocabulary), t.reshape(-1)));
    double norm = pipe.ClipGradNorm(1.0);
    optimizer.step();
    if (mpi.Rank == 0) Console.WriteLine($"step {step}: loss {loss.item<float>():F4} per token, gradient norm {norm:F3}");
}
pipe.SaveCheckpoint(checkpoint, optimizer, steps);
long held = pipe.Parameters().Sum(p => p.NumberOfElements * p.ElementSize);
if (mpi.Rank == 0) Console.WriteLine($"checkpoint written to {checkpoint} (rank 0 holds {held / 1024} KiB of parameters: its stages only)");
return 0;

static string? Option(string[] args, string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
