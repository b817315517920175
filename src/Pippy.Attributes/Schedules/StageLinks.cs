using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>
    /// Which stage sends activations to which (a directed acyclic graph over stage indices, edges from lower to
    /// higher stages), and on which rank each stage runs. Lowering and simulation need both: a skip connection
    /// from stage 0 to stage 3 is a direct message, and two stages on one rank need no message at all.
    /// </summary>
    public sealed class StageLinks
    {
        private readonly int[][] _producers;
        private readonly int[][] _consumers;
        private readonly int[] _rankOfStage;

        public StageLinks(int stageCount, IEnumerable<(int From, int To)> edges, IReadOnlyList<int> rankOfStage)
        {
            if (stageCount < 1) throw new ArgumentOutOfRangeException(nameof(stageCount), "A pipeline has at least one stage.");
            if (rankOfStage.Count != stageCount) throw new ArgumentException("Every stage needs a rank.", nameof(rankOfStage));
            var distinct = edges.Distinct().ToArray();
            foreach (var (from, to) in distinct)
            {
                if (from < 0 || to >= stageCount || from >= to)
                    throw new ArgumentException($"Edge {from}->{to} must go from a lower to a higher stage index below {stageCount}.", nameof(edges));
            }
            StageCount = stageCount;
            _rankOfStage = rankOfStage.ToArray();
            RankCount = _rankOfStage.Max() + 1;
            _producers = Enumerable.Range(0, stageCount).Select(s => distinct.Where(e => e.To == s).Select(e => e.From).OrderBy(x => x).ToArray()).ToArray();
            _consumers = Enumerable.Range(0, stageCount).Select(s => distinct.Where(e => e.From == s).Select(e => e.To).OrderBy(x => x).ToArray()).ToArray();
        }

        /// <summary>A chain 0 -> 1 -> ... -> n-1 with stage k on rank k.</summary>
        public static StageLinks Chain(int stageCount) =>
            new StageLinks(stageCount, Enumerable.Range(0, stageCount - 1).Select(s => (s, s + 1)), Enumerable.Range(0, stageCount).ToArray());

        public int StageCount { get; }
        public int RankCount { get; }
        public IReadOnlyList<int> Producers(int stage) => _producers[stage];
        public IReadOnlyList<int> Consumers(int stage) => _consumers[stage];
        public int RankOf(int stage) => _rankOfStage[stage];

        /// <summary>True when a stage receives at least one activation from a stage on another rank.</summary>
        public bool ReceivesFromOtherRank(int stage) => _producers[stage].Any(p => RankOf(p) != RankOf(stage));

        /// <summary>True when a stage sends at least one activation to a stage on another rank.</summary>
        public bool SendsToOtherRank(int stage) => _consumers[stage].Any(c => RankOf(c) != RankOf(stage));
    }
}
