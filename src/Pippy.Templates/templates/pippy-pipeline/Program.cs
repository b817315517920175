using System;
using Pippy.Runtime;
using PippyTrainer;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// Every rank runs this same program and holds one stage of the model (Regressor.cs has 4):
//   dotnet build && mpiexec -n 4 dotnet run --no-build [-- --checkpoint DIR]
using var mpi = PipelineEnvironment.Start(ref args);     // MPI (MPICH) up; a failure on any rank ends the whole job
const int Features = 16, Width = 64, Batch = 256, Steps = 60;

// Synthetic data, the same on every rank (same seed): learn a fixed smooth function of the features.
torch.manual_seed(1);
var x = randn(Batch, Features);
var y = sin(x.matmul(randn(Features, 1) / Math.Sqrt(Features)) * 2) + 0.5 * x[.., ..1];

// The same initial weights on every rank; Build keeps this rank's stage and drops the rest.
torch.manual_seed(0);
using var pipe = Regressor.Pipeline.Build(new Regressor(Features, Width), mpi, new PipelineOptions
{
    LossReduction = LossReduction.Mean,                  // mse_loss below averages over each microbatch
});
var optimizer = optim.Adam(pipe.Parameters(), 3e-3);    // this rank's parameters only

for (int step = 1; step <= Steps; step++)
{
    using var scope = NewDisposeScope();                 // frees the step's tensors
    optimizer.zero_grad();
    // Splits the batch into microbatches, runs them through the stages and back; the loss is known on every rank.
    float loss = pipe.Step(x, y, (prediction, target) => functional.mse_loss(prediction, target)).item<float>();
    pipe.ClipGradNorm(1.0);                              // by the norm of the whole model's gradient
    optimizer.step();
    if (mpi.Rank == 0 && (step == 1 || step % 10 == 0)) Console.WriteLine($"step {step,3}  loss {loss:F4}");
}

// Each rank writes its stage's shard; Regressor.Pipeline.MergeCheckpoint turns them into one plain model file.
int option = Array.IndexOf(args, "--checkpoint");
string checkpoint = option >= 0 && option + 1 < args.Length ? args[option + 1] : "checkpoint";
pipe.SaveCheckpoint(checkpoint, optimizer, Steps);
if (mpi.Rank == 0) Console.WriteLine($"checkpoint written to {checkpoint}");
return 0;
