using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// A schedule: for every rank, the ordered list of actions it runs in one training step. The string form is one
    /// line per rank of space-separated actions in torch.distributed.pipelining's notation.
    /// </summary>
    public sealed class ScheduleTable : IEquatable<ScheduleTable>
    {
        private readonly PipelineAction[][] _ranks;

        public ScheduleTable(ScheduleKind kind, int stageCount, int microbatches, IEnumerable<IEnumerable<PipelineAction>> actionsByRank)
        {
            Kind = kind;
            StageCount = stageCount;
            Microbatches = microbatches;
            _ranks = actionsByRank.Select(r => r.ToArray()).ToArray();
        }

        public ScheduleKind Kind { get; }
        public int StageCount { get; }
        public int Microbatches { get; }
        public int RankCount => _ranks.Length;

        /// <summary>The rank each stage runs on, read off the table (the rank whose actions name it); -1 for a stage no action names.</summary>
        public IReadOnlyList<int> RankOfStage()
        {
            var ranks = Enumerable.Repeat(-1, StageCount).ToArray();
            for (int r = 0; r < _ranks.Length; r++)
                foreach (var action in _ranks[r])
                    if (action.Stage >= 0 && action.Stage < StageCount && ranks[action.Stage] < 0) ranks[action.Stage] = r;
            return ranks;
        }
        public IReadOnlyList<PipelineAction> ActionsOf(int rank) => _ranks[rank];

        /// <summary>One line per rank, e.g. <c>0F0 0SEND_F0 0F1 0SEND_F1 ...</c>.</summary>
        public IReadOnlyList<string> Format() => _ranks.Select(r => string.Join(" ", r.Select(a => a.ToString()))).ToArray();

        /// <summary>Reads the <see cref="Format"/> form back.</summary>
        public static ScheduleTable Parse(ScheduleKind kind, int stageCount, int microbatches, IReadOnlyList<string> rankLines) =>
            new ScheduleTable(kind, stageCount, microbatches, rankLines.Select(line =>
                line.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries).Select(PipelineAction.Parse)));

        /// <summary>The same table without backward actions: what a forward-only (inference) pass runs.</summary>
        public ScheduleTable ForwardOnly() =>
            new ScheduleTable(Kind, StageCount, Microbatches, _ranks.Select(r => r.Where(a => a.IsForwardPass)));

        public bool Equals(ScheduleTable? other) =>
            other is not null && Kind == other.Kind && StageCount == other.StageCount && Microbatches == other.Microbatches
            && _ranks.Length == other._ranks.Length && _ranks.Zip(other._ranks, (a, b) => a.SequenceEqual(b)).All(x => x);

        public override bool Equals(object? obj) => obj is ScheduleTable other && Equals(other);
        public override int GetHashCode() => ((int)Kind * 397 ^ StageCount) * 397 ^ Microbatches;
        public override string ToString() => string.Join("\n", Format());
    }
}
