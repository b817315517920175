using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>How long each kind of action takes in a simulated run (communication is free by default).</summary>
    public sealed class ScheduleCosts
    {
        public double Forward { get; set; } = 1;
        public double Backward { get; set; } = 2;
        public double BackwardInput { get; set; } = 1;
        public double BackwardWeight { get; set; } = 1;

        /// <summary>Unit costs with B = F (the textbook setting of the bubble formulas): F = 1, B = 1, I = W = 0.5.</summary>
        public static ScheduleCosts Unit => new() { Forward = 1, Backward = 1, BackwardInput = 0.5, BackwardWeight = 0.5 };

        public double Of(ActionKind kind) => kind switch
        {
            ActionKind.Forward => Forward,
            ActionKind.Backward => Backward,
            ActionKind.BackwardInput => BackwardInput,
            ActionKind.BackwardWeight => BackwardWeight,
            _ => 0,
        };
    }

    /// <summary>One action's place in a simulated run.</summary>
    public readonly record struct TimedAction(int Rank, PipelineAction Action, double Start, double End);

    /// <summary>What a simulated run of a table costs: time, idle share, and activation memory.</summary>
    public sealed class ScheduleMetrics
    {
        public ScheduleMetrics(double makespan, IReadOnlyList<double> rankBusy, IReadOnlyList<int> peakInFlight, IReadOnlyList<TimedAction> timeline)
        {
            Makespan = makespan;
            RankBubble = rankBusy.Select(b => makespan <= 0 ? 0 : 1 - b / makespan).ToArray();
            BubbleFraction = makespan <= 0 ? 0 : 1 - rankBusy.Sum() / (rankBusy.Count * makespan);
            PeakInFlight = peakInFlight;
            Timeline = timeline;
        }

        /// <summary>When the last action ends.</summary>
        public double Makespan { get; }

        /// <summary>The share of rank-time spent idle: 1 - busy / (ranks x makespan).</summary>
        public double BubbleFraction { get; }

        public IReadOnlyList<double> RankBubble { get; }

        /// <summary>Per rank, the most (stage, microbatch) activations held at once: forwarded, backward not finished.</summary>
        public IReadOnlyList<int> PeakInFlight { get; }

        public IReadOnlyList<TimedAction> Timeline { get; }
    }
}
