using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Megatron's interleaved 1F1B over v stages per rank placed in a loop (stage c*p + r on rank r), for any
    /// microbatch count. The microbatches are cut into rounds (<see cref="Rounds"/>); within a round the forwards go
    /// through the local chunks in order, the whole round on chunk 0, then on chunk 1, ..., and the backwards the same
    /// way through the chunks in reverse. Rank r warms up with (v-1)*g + 2(p-1-r) forwards (g the first round's size,
    /// torch.distributed.pipelining's count), then alternates one forward and one backward, then drains. It holds at
    /// most that many plus one stage-activations, and never more than v*m.
    /// </summary>
    public sealed class Interleaved1F1BSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.Interleaved1F1B;
        public override string Description => "Megatron's interleaved 1F1B: v stages per rank in a loop, forwards and backwards of the local chunks alternating a round of microbatches at a time.";
        public override StageLayout Layout => StageLayout.Looped;

        /// <summary>
        /// The rounds the microbatches are cut into, as (first microbatch, count): max(1, m / p) rounds of sizes that
        /// differ by at most one, the larger first. With m &gt;= p every round has at least p microbatches, so a rank
        /// that moves on to its next chunk finds the round's first microbatch already back from its trip round the p
        /// ranks, and the idle time stays Megatron's (p-1)(F+B) whatever m is. (Megatron's own cut, rounds of p and a
        /// shorter remainder, can deadlock here: on a short round a rank waits for a forward that its neighbour only
        /// runs after a backward that waits for one of the rank's own still to come, e.g. p = 4, v = 3, m = 5.) With m &lt; p there is one round
        /// of all m; each chunk change then waits p - m steps, which no order can avoid with fewer microbatches than ranks.
        /// </summary>
        public static IReadOnlyList<(int First, int Count)> Rounds(int ranks, int microbatches)
        {
            int count = System.Math.Max(1, microbatches / ranks), size = microbatches / count, larger = microbatches % count;
            var rounds = new (int First, int Count)[count];
            for (int i = 0, first = 0; i < count; first += rounds[i].Count, i++)
                rounds[i] = (first, size + (i < larger ? 1 : 0));
            return rounds;
        }

        /// <summary>How many forwards rank <paramref name="rank"/> runs before its first backward.</summary>
        public static int Warmup(int ranks, int stagesPerRank, int microbatches, int rank) =>
            System.Math.Min(stagesPerRank * microbatches, (stagesPerRank - 1) * Rounds(ranks, microbatches)[0].Count + 2 * (ranks - 1 - rank));

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount, v = stageCount / links.RankCount, p = stageCount / v, total = microbatches * v;
            // The k-th forward of every rank, as (local chunk, microbatch); its k-th backward is the same with the chunk reversed.
            var order = Rounds(p, microbatches)
                .SelectMany(round => Enumerable.Range(0, v).SelectMany(chunk => Enumerable.Range(round.First, round.Count).Select(mb => (Chunk: chunk, Microbatch: mb))))
                .ToArray();
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                PipelineAction Forward(int k) => new(order[k].Chunk * p + r, ActionKind.Forward, order[k].Microbatch);
                PipelineAction Backward(int k) => new((v - 1 - order[k].Chunk) * p + r, ActionKind.Backward, order[k].Microbatch);
                int warmup = Warmup(p, v, microbatches, r);
                var actions = new List<PipelineAction>(2 * total);
                int f = 0, b = 0;
                for (; f < warmup; f++) actions.Add(Forward(f));
                while (f < total)
                {
                    actions.Add(Forward(f++));
                    actions.Add(Backward(b++));
                }
                while (b < total) actions.Add(Backward(b++));
                ranks[r] = actions;
            }
            return new ScheduleTable(Kind, stageCount, microbatches, ranks);
        }
    }
}
