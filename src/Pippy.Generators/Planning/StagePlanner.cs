namespace Pippy.Generators.Planning
{
    /// <summary>
    /// Plans a parsed model, one concern at a time: <see cref="StageCutter"/> cuts forward's statements into stages,
    /// <see cref="StageValues"/> works out from the statements' data flow which values each stage takes and makes,
    /// <see cref="SubmodulePlanner"/> which submodules each stage holds and which parameters live on several stages, and
    /// <see cref="SchedulePlanner"/> builds the schedule table with the same code the runtime uses; the table gives each
    /// stage its rank. <see cref="UsingDeclarations"/> handles forward's <c>using var</c> declarations.
    /// </summary>
    internal static class StagePlanner
    {
        public static PlanResult Plan(PipelineModelSpec spec, EquatableArray<AdditionalFileSpec> files = default)
        {
            try
            {
                return PlanModel(spec, files);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return new PlanResult(null, new[] { DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, spec.AttributeLocation, spec.Type.Name, $"{e.GetType().Name}: {e.Message}") }.ToEquatableArray());
            }
        }

        private static PlanResult PlanModel(PipelineModelSpec spec, EquatableArray<AdditionalFileSpec> files)
        {
            var diagnostics = new List<DiagnosticInfo>();
            var statements = spec.Statements;
            var cut = StageCutter.Cut(spec, diagnostics);
            if (cut is null) return Failed(diagnostics);
            diagnostics.AddRange(UsingDeclarations.Check(statements, cut.StageOf, cut.Count));

            var values = StageValues.Find(spec, cut, diagnostics);
            var stageModules = SubmodulePlanner.PerStage(spec, cut);
            var replicated = SubmodulePlanner.Replicated(spec, stageModules, diagnostics);
            if (HasErrors(diagnostics)) return Failed(diagnostics);

            var table = SchedulePlanner.Build(spec, cut.Count, values.Edges(), files, diagnostics);
            if (table is null) return Failed(diagnostics);
            var rankOfStage = table.RankOfStage();

            var variables = spec.Variables.ToDictionary(v => v.Name);
            var stagesPlan = Enumerable.Range(0, cut.Count).Select(stage => new StagePlan(
                stage,
                rankOfStage[stage],
                cut[stage][0].Statement,
                cut[stage][cut[stage].Count - 1].Statement,
                values.Inputs[stage].ToEquatableArray(),
                StageValues.OuterLocals(cut.Statements(stage), values.Inputs[stage].Concat(values.Arguments[stage])).Select(n => variables[n]).ToEquatableArray(),
                values.Outputs[stage].Select(n => variables[n]).ToEquatableArray(),
                stageModules[stage].ToEquatableArray(),
                cut.Statements(stage).Select(s => UsingDeclarations.Code(s, values.Outputs[stage])).ToEquatableArray(),
                cut.Statements(stage).Any(s => s.UsesModel),
                UsingDeclarations.ScopesBefore(statements, cut[stage][0].Statement).Select(s => s.Code).ToEquatableArray(),
                UsingDeclarations.OpenScopes(statements, cut[stage].Select(u => u.Statement)).ToEquatableArray(),
                values.Arguments[stage].ToEquatableArray()));

            var plan = new PipelinePlan(spec.Type, spec.Inputs, spec.Output, stagesPlan.ToEquatableArray(), replicated.ToEquatableArray(),
                SchedulePlanner.KindOf(spec), table.Microbatches, table.RankCount, table.Format().ToEquatableArray());
            return new PlanResult(plan, diagnostics.ToEquatableArray());
        }

        private static PlanResult Failed(List<DiagnosticInfo> diagnostics) => new(null, diagnostics.ToEquatableArray());

        public static bool HasErrors(IEnumerable<DiagnosticInfo> diagnostics) =>
            diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);

        /// <summary>The largest i below <paramref name="count"/> with <paramref name="predicate"/>(i), or -1.</summary>
        internal static int LastIndex(int count, Func<int, bool> predicate)
        {
            for (int i = count - 1; i >= 0; i--)
                if (predicate(i)) return i;
            return -1;
        }
    }
}
