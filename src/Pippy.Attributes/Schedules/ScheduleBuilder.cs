using System;
using System.Collections.Generic;
using System.Linq;

namespace Pippy.Schedules
{
    /// <summary>A table that failed validation or simulation; the message says which rank and action.</summary>
    public sealed class InvalidScheduleException : Exception
    {
        public InvalidScheduleException(string message) : base(message) { }
    }

    /// <summary>
    /// The one entry point used at build time (by the generator) and at run time (by the runtime, for a microbatch
    /// count chosen then): compute the table for a schedule kind (its <see cref="ScheduleDefinition"/>), lower it to
    /// communication, validate, simulate.
    /// </summary>
    public static class ScheduleBuilder
    {
        /// <summary>Limits that keep a typo from building a table of billions of actions.</summary>
        public const int MaxMicrobatches = 65536, MaxStages = 1024;

        /// <summary>Problems with the request itself, before any table is built (empty when it is fine).</summary>
        public static IReadOnlyList<string> CheckRequest(ScheduleKind kind, int stageCount, int stagesPerRank, int microbatches)
        {
            var problems = new List<string>();
            if (ScheduleDefinitions.TryFor(kind) is null) problems.Add($"{kind} is not a known schedule");
            if (stageCount < 1) problems.Add($"a pipeline needs at least one stage, not {stageCount}");
            if (microbatches < 1) problems.Add($"Microbatches = {microbatches}: there must be at least one microbatch");
            if (microbatches > MaxMicrobatches) problems.Add($"Microbatches = {microbatches}: at most {MaxMicrobatches} microbatches (each is a slice of the batch)");
            if (stageCount > MaxStages) problems.Add($"{stageCount} stages: at most {MaxStages}");
            if (problems.Count == 0) problems.AddRange(SchedulePlacement.Check(kind, stageCount, stagesPerRank, microbatches));
            return problems;
        }

        /// <summary>The stage links of <paramref name="edges"/> with the stages placed on ranks as <paramref name="kind"/> places them.</summary>
        public static StageLinks Links(ScheduleKind kind, int stageCount, int stagesPerRank, IEnumerable<(int From, int To)> edges)
        {
            var problems = SchedulePlacement.CheckPlacement(kind, stageCount, stagesPerRank);
            if (problems.Count > 0) throw new InvalidScheduleException(string.Join("; ", problems));
            return new StageLinks(stageCount, edges, SchedulePlacement.Ranks(kind, stageCount, stagesPerRank));
        }

        /// <summary>Builds and checks a lowered table; throws <see cref="InvalidScheduleException"/> naming the problem.</summary>
        public static ScheduleTable Build(ScheduleKind kind, StageLinks links, int microbatches)
        {
            int stagesPerRank = links.StageCount / links.RankCount;
            var problems = CheckRequest(kind, links.StageCount, stagesPerRank, microbatches);
            if (problems.Count > 0) throw new InvalidScheduleException(string.Join("; ", problems));
            var definition = ScheduleDefinitions.For(kind);
            var expected = definition.Ranks(links.StageCount, stagesPerRank);
            if (Enumerable.Range(0, links.StageCount).Any(s => links.RankOf(s) != expected[s]))
                throw new InvalidScheduleException($"{kind} places stage s on rank {string.Join(", ", expected)} for s = 0, 1, ...; the links place them otherwise");
            var lowered = ScheduleLowering.AddCommunication(definition.ComputeOnly(links, microbatches), links);
            Check(lowered, links);
            return lowered;
        }

        /// <summary>Validates and simulates a lowered table; throws <see cref="InvalidScheduleException"/> if it is wrong.</summary>
        public static void Check(ScheduleTable table, StageLinks links)
        {
            var errors = ScheduleValidator.Validate(table, links);
            if (errors.Count > 0) throw new InvalidScheduleException($"{table.Kind} table is invalid: {string.Join("; ", errors.Take(5))}");
            var simulation = ScheduleSimulator.Run(table, links);
            if (!simulation.Completed) throw new InvalidScheduleException($"{table.Kind} table would hang: {simulation.Deadlock}");
        }
    }
}
