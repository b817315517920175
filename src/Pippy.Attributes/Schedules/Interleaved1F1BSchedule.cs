using System.Collections.Generic;

namespace Pippy.Schedules
{
    /// <summary>
    /// Megatron's interleaved 1F1B over v stages per rank placed in a loop (stage c*p + r on rank r). Forwards go
    /// through the local chunks p microbatches at a time (chunk (k/p) mod v, microbatch (k/(p v)) p + k mod p for the
    /// k-th forward), backwards through the chunks in reverse; rank r warms up with (p-r-1)*2 + (v-1)*p forwards, then
    /// alternates, then drains. m must be a multiple of p.
    /// </summary>
    public sealed class Interleaved1F1BSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.Interleaved1F1B;
        public override string Description => "Megatron's interleaved 1F1B: v stages per rank in a loop, forwards and backwards of the local chunks alternating p microbatches at a time.";
        public override StageLayout Layout => StageLayout.Looped;

        protected override string? CheckMicrobatches(int ranks, int microbatches) =>
            microbatches % ranks != 0
                ? $"Interleaved1F1B needs the microbatch count to be a multiple of the rank count ({ranks}), but Microbatches = {microbatches}"
                : null;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount, v = stageCount / links.RankCount, p = stageCount / v, total = microbatches * v;
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                PipelineAction Forward(int k) => new((k / p % v) * p + r, ActionKind.Forward, k / (p * v) * p + k % p);
                PipelineAction Backward(int k) => new((v - 1 - k / p % v) * p + r, ActionKind.Backward, k / (p * v) * p + k % p);
                int warmup = microbatches == p ? total : System.Math.Min(total, (p - r - 1) * 2 + (v - 1) * p);
                var actions = new List<PipelineAction>();
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
