using System;
using System.CommandLine;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Gpt;
using Pippy.Runtime;
using Pippy.Runtime.Materialization;
using Pippy.Schedules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

// A character-level GPT trained across MPI ranks: mpiexec -n 4 dotnet run --project samples/Gpt [-- options]
using var mpi = PipelineEnvironment.Start(ref args);

var schedule = new Option<string>("--schedule") { Description = "Pipeline schedule: gpipe, 1f1b, interleaved (2 stages per rank: run on half the ranks), zero-bubble or looped-bfs.", DefaultValueFactory = _ => "1f1b" };
var microbatches = new Option<int>("--microbatches") { Description = "Microbatches each batch is split into (each runs through the pipeline on its own).", DefaultValueFactory = _ => 8 };
var dataParallel = new Option<int>("--data-parallel") { Description = "Pipelines training side by side on parts of each batch; the ranks are divided among them.", DefaultValueFactory = _ => 1 };
var steps = new Option<int>("--steps") { Description = "Optimizer steps to train (the default takes about three minutes on 2 cores).", DefaultValueFactory = _ => 800 };
var batch = new Option<int>("--batch") { Description = "Sequences per step (all ranks see the same batch; each microbatch is a slice of it).", DefaultValueFactory = _ => 32 };
var context = new Option<int>("--context") { Description = "Characters per sequence.", DefaultValueFactory = _ => 64 };
var learningRate = new Option<double>("--lr") { Description = "AdamW's peak learning rate: reached after a linear warmup (the first 5 % of the steps), then a cosine decay to a tenth of it.", DefaultValueFactory = _ => 3e-3 };
var width = new Option<int>("--width") { Description = "Model width (embedding size).", DefaultValueFactory = _ => 128 };
var depth = new Option<int>("--depth") { Description = "Transformer blocks (at least 4: the pipeline divides them among 4 stages).", DefaultValueFactory = _ => 4 };
var heads = new Option<int>("--heads") { Description = "Attention heads per block (dividing the width).", DefaultValueFactory = _ => 4 };
var checkpoint = new Option<string>("--checkpoint") { Description = "Folder for the checkpoint written at the end (one shard per rank and an index), merged into model.bin for sampling.", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "pippy-gpt") };
var trace = new Option<string?>("--trace") { Description = "Write the last step's timeline of every rank to this Chrome-trace file (open it in ui.perfetto.dev)." };
var text = new Option<string?>("--text") { Description = "Train on this text file instead of the fortunes databases (sudo apt-get install fortunes)." };
var seed = new Option<int>("--seed") { Description = "Seed of the initial weights and of the batches.", DefaultValueFactory = _ => 1 };
var recompute = new Option<bool>("--recompute") { Description = "Activation recomputation: each stage keeps only its inputs and recomputes its activations before its backward (less memory, one more forward)." };
var bf16 = new Option<bool>("--bf16") { Description = "Compute and send in bf16, with float32 master weights for AdamW (MixedPrecision)." };
var evalEvery = new Option<int>("--eval-every") { Description = "Every this many steps, the loss on held-out text (the last 10 %) in eval mode (0: never).", DefaultValueFactory = _ => 100 };
var sample = new Option<int>("--sample") { Description = "Characters to generate from the trained model at the end (0: none).", DefaultValueFactory = _ => 300 };

var root = new RootCommand("Trains a character-level GPT (token and position embeddings, transformer blocks in 4 pipeline stages, a head tied to the " +
                           "embedding) on English text across MPI ranks, prints each step's loss, writes a checkpoint and samples text from it.")
{
    schedule, microbatches, dataParallel, steps, batch, context, learningRate, checkpoint, trace, text, seed, sample, recompute, evalEvery, bf16,
    width, depth, heads,
};
root.SetAction(result => Trainer.Run(mpi, new Trainer.Settings(
    result.GetValue(schedule)!, result.GetValue(microbatches), result.GetValue(dataParallel), result.GetValue(steps), result.GetValue(batch),
    result.GetValue(context), result.GetValue(learningRate), result.GetValue(checkpoint)!, result.GetValue(trace), result.GetValue(text),
    result.GetValue(seed), result.GetValue(sample), result.GetValue(recompute), result.GetValue(evalEvery), result.GetValue(bf16),
    result.GetValue(width), result.GetValue(depth), result.GetValue(heads))));
// Exceptions go on to Pippy's handler (not System.CommandLine's, which prints each rank's stack trace): a mistake every
// rank agreed on is said once, any other failure ends every rank of the job.
return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
