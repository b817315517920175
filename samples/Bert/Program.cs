using System.CommandLine;
using System.IO;
using Bert;
using Pippy.Runtime;

// A character-level BERT trained across MPI ranks: mpiexec -n 4 dotnet run --project samples/Bert [-- options]
using var mpi = PipelineEnvironment.Start(ref args);

var schedule = new Option<string>("--schedule") { Description = "Pipeline schedule: gpipe, 1f1b, interleaved (2 stages per rank: run on 2 ranks), zero-bubble or looped-bfs.", DefaultValueFactory = _ => "1f1b" };
var microbatches = new Option<int>("--microbatches") { Description = "Microbatches each batch is split into (each runs through the pipeline on its own).", DefaultValueFactory = _ => 8 };
var steps = new Option<int>("--steps") { Description = "Optimizer steps to train (the default took three minutes on 2 shared cores, startup included).", DefaultValueFactory = _ => 600 };
var batch = new Option<int>("--batch") { Description = "Sentences per step (all ranks see the same batch; each microbatch is a slice of it).", DefaultValueFactory = _ => 32 };
var context = new Option<int>("--context") { Description = "Characters per sequence: shorter sentences are padded to it, longer ones cut at spaces.", DefaultValueFactory = _ => 64 };
var learningRate = new Option<double>("--lr") { Description = "AdamW learning rate.", DefaultValueFactory = _ => 1e-3 };
var checkpoint = new Option<string>("--checkpoint") { Description = "Folder for the checkpoint written at the end (one shard per rank and an index), merged into model.bin for the predictions.", DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "pippy-bert") };
var seed = new Option<int>("--seed") { Description = "Seed of the initial weights, of the batches and of the masked positions.", DefaultValueFactory = _ => 1 };
var checkParity = new Option<bool>("--check-parity") { Description = "Also train the plain model in one process on every rank (same seed, batches, AdamW): compare each step's loss and every gradient, print PASS or FAIL (exit code 1)." };
var logEvery = new Option<int>("--log-every") { Description = "Print the loss every this many steps (and at the first and last).", DefaultValueFactory = _ => 50 };

var root = new RootCommand("Trains a character-level BERT (token and position embeddings, encoder blocks with padding-masked self-attention in 4 pipeline stages, " +
                           "a head tied to the embedding) to fill in masked characters of fortunes sentences across MPI ranks, writes a checkpoint, " +
                           "merges it into the plain model and shows its predictions and accuracy on held-out sentences.")
{
    schedule, microbatches, steps, batch, context, learningRate, checkpoint, seed, checkParity, logEvery,
};
root.SetAction(result => Trainer.Run(mpi, new Trainer.Settings(
    result.GetValue(schedule)!, result.GetValue(microbatches), result.GetValue(steps), result.GetValue(batch), result.GetValue(context),
    result.GetValue(learningRate), result.GetValue(checkpoint)!, result.GetValue(seed), result.GetValue(checkParity), result.GetValue(logEvery))));
// Exceptions go on to Pippy's handler (not System.CommandLine's, which prints each rank's stack trace): a mistake every
// rank agreed on is said once, any other failure ends every rank of the job.
return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
