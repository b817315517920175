using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>The registry: one <see cref="ScheduleDefinition"/> for every <see cref="ScheduleKind"/>.</summary>
    public static class ScheduleDefinitions
    {
        /// <summary>Every schedule definition, in <see cref="ScheduleKind"/> value order. A new kind is registered here.</summary>
        public static IReadOnlyList<ScheduleDefinition> All { get; } = new ScheduleDefinition[]
        {
            new GPipeSchedule(),
            new OneFOneBSchedule(),
            new Interleaved1F1BSchedule(),
            new LoopedBfsSchedule(),
            new InterleavedZeroBubbleSchedule(),
            new ZeroBubbleVSchedule(),
            new CsvSchedule(),
            new DualPipeVSchedule(),
        };

        /// <summary>The definition of <paramref name="kind"/>, or null for a value that is not a schedule kind (an int cast to <see cref="ScheduleKind"/>).</summary>
        public static ScheduleDefinition? TryFor(ScheduleKind kind) => All.FirstOrDefault(d => d.Kind == kind);

        /// <summary>The definition of <paramref name="kind"/>; throws <see cref="ArgumentOutOfRangeException"/> for a value that is not a schedule kind.</summary>
        public static ScheduleDefinition For(ScheduleKind kind) =>
            TryFor(kind) ?? throw new ArgumentOutOfRangeException(nameof(kind), kind, $"{kind} is not a known schedule");
    }
}
