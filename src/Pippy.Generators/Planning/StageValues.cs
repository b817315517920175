namespace Pippy.Generators.Planning
{
    /// <summary>
    /// The values that cross stage boundaries, from the statements' data flow: what each stage reads from before it
    /// (<see cref="Inputs"/>) and makes for later stages (<see cref="Outputs"/>). A value goes straight from the stage
    /// that last wrote it to every stage that reads it (a skip connection is a direct edge), or from forward's arguments.
    /// </summary>
    internal sealed class StageValues
    {
        private StageValues(List<StageInputPlan>[] inputs, List<StageInputPlan>[] arguments, List<string>[] outputs)
        {
            Inputs = inputs;
            Arguments = arguments;
            Outputs = outputs;
        }

        /// <summary>Per stage, the tensors it takes, in the order its forward unpacks them.</summary>
        public IReadOnlyList<List<StageInputPlan>> Inputs { get; }

        /// <summary>
        /// Per stage, the plain (non-tensor) arguments of forward it reads, each with its position in forward's
        /// parameters: not sent between stages, but given by the runtime to every stage for the whole step.
        /// </summary>
        public IReadOnlyList<List<StageInputPlan>> Arguments { get; }

        /// <summary>Per stage, the names of the values it sends to later stages, in the order it returns them.</summary>
        public IReadOnlyList<List<string>> Outputs { get; }

        /// <summary>The stage graph's edges: (producer, consumer) for every value one stage takes from another.</summary>
        public (int From, int To)[] Edges() =>
            Inputs.SelectMany((inputs, stage) => inputs.Where(i => i.FromStage >= 0).Select(i => (i.FromStage, stage))).ToArray();

        /// <summary>Finds every stage's inputs and outputs; reports non-tensor values that would cross a boundary.</summary>
        public static StageValues Find(PipelineModelSpec spec, StageCut cut, List<DiagnosticInfo> diagnostics)
        {
            var scopeVariables = UsingDeclarations.ScopeVariables(spec.Statements);
            var variables = spec.Variables.ToDictionary(v => v.Name);
            var inputNames = spec.Inputs.Select(v => v.Name).ToList();
            var stageInputs = Enumerable.Range(0, cut.Count).Select(_ => new List<StageInputPlan>()).ToArray();
            var stageArguments = Enumerable.Range(0, cut.Count).Select(_ => new List<StageInputPlan>()).ToArray();
            var stageOutputs = Enumerable.Range(0, cut.Count).Select(_ => new List<string>()).ToArray();
            for (int stage = 0; stage < cut.Count; stage++)
            {
                var units = cut.Statements(stage).ToList();
                foreach (string name in FlowsInto(units))
                {
                    if (scopeVariables.Contains(name)) continue; // a dispose scope: every later stage opens its own
                    int producer = StagePlanner.LastIndex(stage, p => cut.Statements(p).Any(s => s.Written.Contains(name)));
                    if (producer < 0 && !inputNames.Contains(name)) continue; // not definitely assigned before: the compiler reports it
                    var variable = variables[name];
                    if (!variable.IsTensor && producer < 0 && spec.Inputs.FirstOrDefault(i => i.Name == name)?.IsPlainArgument == true)
                    {
                        stageArguments[stage].Add(new StageInputPlan(variable, -1, inputNames.IndexOf(name)));
                        continue;
                    }
                    if (!variable.IsTensor)
                    {
                        var firstUse = units.First(u => u.FlowsIn.Contains(name));
                        string source = producer < 0 ? "forward's arguments" : $"stage {producer}";
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NonTensorCrossesBoundary, firstUse.Location, name, variable.Type, source, stage));
                        continue;
                    }
                    if (producer < 0)
                    {
                        stageInputs[stage].Add(new StageInputPlan(variable, -1, inputNames.IndexOf(name)));
                        continue;
                    }
                    if (!stageOutputs[producer].Contains(name)) stageOutputs[producer].Add(name);
                    stageInputs[stage].Add(new StageInputPlan(variable, producer, stageOutputs[producer].IndexOf(name)));
                }
            }
            return new StageValues(stageInputs, stageArguments, stageOutputs);
        }

        /// <summary>Variables the units assign that are neither declared in them nor stage inputs: the stage must declare them.</summary>
        public static IEnumerable<string> OuterLocals(IEnumerable<StatementSpec> units, IEnumerable<StageInputPlan> inputs)
        {
            var list = units.ToList();
            var declared = new HashSet<string>(list.SelectMany(u => u.Declared).Concat(inputs.Select(i => i.Variable.Name)));
            return list.SelectMany(u => u.Written).Where(name => !declared.Contains(name)).Distinct();
        }

        /// <summary>
        /// Variables whose value from before the first unit is read by the units: read by a unit and not always
        /// assigned by an earlier unit (sequential composition of the per-statement data flow).
        /// </summary>
        private static IEnumerable<string> FlowsInto(IEnumerable<StatementSpec> units)
        {
            var seen = new HashSet<string>();
            var killed = new HashSet<string>();
            foreach (var unit in units)
            {
                foreach (string name in unit.FlowsIn)
                    if (!killed.Contains(name) && seen.Add(name)) yield return name;
                foreach (string name in unit.AlwaysAssigned) killed.Add(name);
            }
        }
    }
}
