using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Materialization;
using static TorchSharp.torch;

namespace Pippy.Runtime.Balancing
{
    /// <summary>
    /// How a <c>[SplitInto(k)]</c> module list is divided among its stages: by parameter count (the default), or by
    /// each block's measured forward+backward time on a sample (torchgpipe's balance_by_time). The division is the one
    /// with the smallest most expensive stage (<see cref="PipelineRanges.Balanced"/>); each rank prints its range and
    /// its predicted cost at start.
    /// </summary>
    public abstract class StageBalance
    {
        private protected StageBalance() { }

        /// <summary>Each block costs its number of parameters.</summary>
        public static StageBalance ByParameters { get; } = new ParameterBalance();

        /// <summary>
        /// Each block costs its measured forward+backward time: the blocks run one after another, the first on
        /// <paramref name="sampleInput"/> (what the list's first block receives, for one microbatch) and each on its
        /// predecessor's output, <paramref name="repeats"/> times after one warm-up (the fastest counts: on a busy machine
        /// it is the least disturbed). Every rank
        /// measures and the times are averaged across ranks, so all ranks divide the list alike. For lists of
        /// <c>Module&lt;Tensor, Tensor&gt;</c> blocks that run in sequence, on a model built with memory on every rank.
        /// </summary>
        public static StageBalance ByTime(Tensor sampleInput, int repeats = 5) => new TimeBalance(new Dictionary<string, Tensor> { [""] = sampleInput }, repeats);

        /// <summary><see cref="ByTime(Tensor, int)"/> for a model with several lists: a sample input per list name.</summary>
        public static StageBalance ByTime(IReadOnlyDictionary<string, Tensor> sampleInputs, int repeats = 5) => new TimeBalance(sampleInputs, repeats);

        /// <summary>The cost of every block of each list, by list name; null to count parameters.</summary>
        /// <param name="world">Every rank of the job, whose measurements are averaged (under the watchdog: <see cref="PipelineOptions.ReceiveTimeout"/>).</param>
        internal abstract IReadOnlyDictionary<string, long[]>? Measure(IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? lists, string model, MpiCommunicator world);

        /// <summary>What a cost counts, for the printed plan.</summary>
        internal abstract string Unit { get; }

        private sealed class ParameterBalance : StageBalance
        {
            internal override string Unit => "parameters";
            internal override IReadOnlyDictionary<string, long[]>? Measure(IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? lists, string model, MpiCommunicator world) => null;
        }

        private sealed class TimeBalance(IReadOnlyDictionary<string, Tensor> samples, int repeats) : StageBalance
        {
            internal override string Unit => "µs measured";

            internal override IReadOnlyDictionary<string, long[]>? Measure(IReadOnlyDictionary<string, IReadOnlyList<nn.Module>>? lists, string model, MpiCommunicator world)
            {
                if (lists is null || lists.Count == 0)
                    throw new InvalidOperationException($"StageBalance.ByTime: {model} has no [SplitInto] module list to balance.");
                if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), repeats, "StageBalance.ByTime needs at least one timed run per block.");
                var costs = new Dictionary<string, long[]>();
                foreach (var (name, blocks) in lists.OrderBy(l => l.Key, StringComparer.Ordinal))
                {
                    var sample = samples.TryGetValue(name, out var s) ? s
                        : samples.Count == 1 && samples.ContainsKey("") && lists.Count == 1 ? samples[""]
                        : throw new ArgumentException($"StageBalance.ByTime: no sample input for {model}'s list '{name}'; give one per list ({string.Join(", ", lists.Keys)}).");
                    var times = Time(name, blocks, sample, model);
                    // Every rank measured; the average is the same everywhere, so every rank divides the list alike.
                    var total = new double[times.Length];
                    // Non-blocking and polled with the watchdog's deadline: a rank that never measures ends the job with a message.
                    world.Allreduce<double>(times, total, ReduceOperation.Sum, $"the allreduce of the measured block times of StageBalance.ByTime ({model}.{name})");
                    int size = world.Size;
                    costs[name] = total.Select(t => Math.Max(1, (long)Math.Round(t / size))).ToArray();
                }
                return costs;
            }

            /// <summary>Fastest forward+backward microseconds of each block, each run on its predecessor's output.</summary>
            private double[] Time(string name, IReadOnlyList<nn.Module> blocks, Tensor sample, string model)
            {
                var result = new double[blocks.Count];
                using var scope = NewDisposeScope();
                var x = sample.detach();
                for (int k = 0; k < blocks.Count; k++)
                {
                    if (blocks[k] is not nn.Module<Tensor, Tensor> block)
                        throw new NotSupportedException($"StageBalance.ByTime: {model}.{name}[{k}] is a {blocks[k].GetType().Name}, not a Module<Tensor, Tensor>; balance this list by parameters.");
                    if (LazyModel.IsLazy(block))
                        throw new InvalidOperationException($"StageBalance.ByTime: {model}.{name}[{k}] has no memory (the model was built with LazyModel.Construct), so it cannot run here; build the model normally to measure, or balance by parameters.");
                    var runs = new double[repeats];
                    Tensor output = x;
                    for (int r = -1; r < repeats; r++)
                    {
                        var input = x.detach().requires_grad_(x.is_floating_point());
                        var clock = Stopwatch.StartNew();
                        output = block.forward(input);
                        if (output.requires_grad) output.backward(new[] { ones_like(output) });
                        if (r >= 0) runs[r] = clock.Elapsed.TotalMilliseconds * 1000;
                    }
                    block.zero_grad();
                    result[k] = runs.Min();
                    x = output.detach();
                }
                return result;
            }
        }
    }
}
