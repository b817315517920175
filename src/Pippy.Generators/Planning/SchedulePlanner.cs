using Pippy.Schedules;

namespace Pippy.Generators.Planning
{
    /// <summary>
    /// Resolves the attribute's schedule into the build-time table, with the same code the runtime uses: a computed
    /// kind is built on its placement (<see cref="SchedulePlacement"/>: one stage per rank, looped, or in a V), a
    /// <c>ScheduleFile</c> is read from the project's AdditionalFiles; either is lowered, validated and simulated.
    /// The rank of each stage is read off the resulting table, which is what the runtime runs.
    /// </summary>
    internal static class SchedulePlanner
    {
        /// <summary>The kind the table is built as: <see cref="ScheduleKind.Custom"/> whenever a schedule file is named.</summary>
        public static ScheduleKind KindOf(PipelineModelSpec spec) =>
            spec.ScheduleFile.Length > 0 ? ScheduleKind.Custom : spec.Schedule;

        /// <summary>The table for <paramref name="stageCount"/> stages linked by <paramref name="edges"/>, or null after reporting why there is none.</summary>
        public static ScheduleTable? Build(
            PipelineModelSpec spec, int stageCount, IReadOnlyList<(int From, int To)> edges, EquatableArray<AdditionalFileSpec> files, List<DiagnosticInfo> diagnostics)
        {
            var kind = KindOf(spec);
            try
            {
                if (kind != ScheduleKind.Custom)
                    return ScheduleBuilder.Build(kind, ScheduleBuilder.Links(kind, stageCount, spec.StagesPerRank, edges), spec.Microbatches);
                var file = files.FirstOrDefault(f => f.Name == spec.ScheduleFile || f.Path.Replace('\\', '/').EndsWith("/" + spec.ScheduleFile.Replace('\\', '/'), StringComparison.Ordinal));
                if (file is null)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ScheduleFileNotFound, spec.AttributeLocation, spec.ScheduleFile));
                    return null;
                }
                return CsvSchedule.Load(file.Text, spec.ScheduleFile, edges, stageCount);
            }
            catch (InvalidScheduleException e)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidSchedule, spec.AttributeLocation, kind, spec.Type.Name, e.Message));
                return null;
            }
        }
    }
}
