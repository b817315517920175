using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// DualPipeV (DeepSeek's DualPipe folded into a V): two stages per rank, rank r holding a = r and b = 2p-1-r. After
    /// a warm-up that fills both stages, each step pairs a forward of one stage with a backward of the other (F a with
    /// B b, then F b with B a), which a GPU can overlap; here they run one after the other. The tail splits backwards
    /// into I and W and runs the W's last, to fill the drain. Needs m &gt;= 2p. Phases for rank r:
    /// (1) 2(p-r-1) forwards of a; (2) r+1 pairs F a, F b; (3) p-r-1 times I b, W b, F b; (4) m-2p+r+1 times
    /// F a, B b, F b, B a; (5) p-r-1 times B b, F b, B a; (6) r+1 times a backward of b then of a, the second half of
    /// them split into I (b on odd ranks, a on even ranks, never stage 0); (7) p-r-1 input gradients of a (a full
    /// backward on stage 0); (8) the W's still owed, by microbatch.
    /// </summary>
    public sealed class DualPipeVSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.DualPipeV;
        public override string Description => "DualPipeV: two stages per rank in a V, forward and backward of different microbatches paired in the steady state, a split drain.";
        public override StageLayout Layout => StageLayout.V;

        protected override string? CheckMicrobatches(int ranks, int microbatches) =>
            microbatches < 2 * ranks
                ? $"DualPipeV needs at least twice as many microbatches as ranks ({2 * ranks}), but Microbatches = {microbatches}"
                : null;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches)
        {
            int stageCount = links.StageCount, p = stageCount / 2;
            var ranks = new List<PipelineAction>[p];
            for (int r = 0; r < p; r++)
            {
                int a = r, b = 2 * p - 1 - r;
                var next = new Dictionary<(int Stage, ActionKind Kind), int>();
                var actions = new List<PipelineAction>();
                void Add(int stage, ActionKind kind)
                {
                    // A B or an I takes the stage's next backward microbatch; a W the next one whose I ran.
                    var counter = kind == ActionKind.BackwardWeight ? (stage, ActionKind.BackwardWeight) : kind == ActionKind.Forward ? (stage, ActionKind.Forward) : (stage, ActionKind.Backward);
                    next.TryGetValue(counter, out int mb);
                    next[counter] = mb + 1;
                    actions.Add(new PipelineAction(stage, kind, mb));
                }
                void Split(int stage) => Add(stage, ActionKind.BackwardInput);

                for (int i = 0; i < (p - r - 1) * 2; i++) Add(a, ActionKind.Forward);
                for (int i = 0; i < r + 1; i++) { Add(a, ActionKind.Forward); Add(b, ActionKind.Forward); }
                for (int i = 0; i < p - r - 1; i++)
                {
                    Split(b);
                    next.TryGetValue((b, ActionKind.BackwardWeight), out int w);
                    next[(b, ActionKind.BackwardWeight)] = w + 1;
                    actions.Add(new PipelineAction(b, ActionKind.BackwardWeight, w));
                    Add(b, ActionKind.Forward);
                }
                for (int i = 0; i < microbatches - 2 * p + r + 1; i++)
                {
                    Add(a, ActionKind.Forward); Add(b, ActionKind.Backward);
                    Add(b, ActionKind.Forward); Add(a, ActionKind.Backward);
                }
                for (int i = 0; i < p - r - 1; i++)
                {
                    Add(b, ActionKind.Backward);
                    Add(b, ActionKind.Forward); Add(a, ActionKind.Backward);
                }
                int tail = r + 1;
                for (int i = 0; i < tail; i++)
                {
                    bool secondHalf = i >= tail / 2;
                    if (secondHalf && r % 2 == 1) Split(b); else Add(b, ActionKind.Backward);
                    if (secondHalf && r % 2 == 0 && a != 0) Split(a); else Add(a, ActionKind.Backward);
                }
                for (int i = 0; i < p - r - 1; i++)
                {
                    if (a == 0) Add(a, ActionKind.Backward); else Split(a);
                }
                // The W's owed: one per I not yet followed by its W, in microbatch order.
                var owed = actions.Where(x => x.Kind == ActionKind.BackwardInput)
                    .Select(x => new PipelineAction(x.Stage, ActionKind.BackwardWeight, x.Microbatch))
                    .Where(w => !actions.Contains(w))
                    .OrderBy(w => w.Microbatch).ThenBy(w => w.Stage)
                    .ToList();
                actions.AddRange(owed);
                ranks[r] = actions;
            }
            return new ScheduleTable(Kind, stageCount, microbatches, ranks);
        }
    }
}
