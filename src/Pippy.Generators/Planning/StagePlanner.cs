using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Generators.Diagnostics;
using Pippy.Generators.Model;
using Pippy.Schedules;

namespace Pippy.Generators.Planning
{
    /// <summary>
    /// Cuts forward's statements into stages at the [SplitEnd] members, works out from the statements' data flow
    /// which values each stage takes and makes (a value goes straight from the stage that last wrote it to every
    /// stage that reads it), and builds the schedule table with the same code the runtime uses.
    /// </summary>
    internal static class StagePlanner
    {
        public static PlanResult Plan(PipelineModelSpec spec)
        {
            var diagnostics = new List<DiagnosticInfo>();
            var statements = spec.Statements;
            var ends = SplitPoints(spec, diagnostics);
            if (HasErrors(diagnostics)) return new PlanResult(null, diagnostics.ToEquatableArray());

            // Stage k runs statements [starts[k], ends[k]].
            var stageEnds = ends.Concat(new[] { statements.Count - 1 }).ToArray();
            var starts = new[] { 0 }.Concat(ends.Select(e => e + 1)).ToArray();
            int stageCount = stageEnds.Length;
            int StageOf(int statement) => Array.FindIndex(stageEnds, e => statement <= e);

            for (int i = 0; i < statements.Count; i++)
            {
                if (statements[i].Returns && StageOf(i) < stageCount - 1)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReturnBeforeLastStage, statements[i].Location, StageOf(i), spec.Type.Name));
            }
            foreach (var module in spec.Modules)
            {
                var stages = Enumerable.Range(0, statements.Count).Where(i => statements[i].Modules.Contains(module.Name)).Select(StageOf).Distinct().ToArray();
                if (stages.Length > 1)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModuleInSeveralStages, module.Location, module.Name, string.Join(" and ", stages)));
            }

            var variables = spec.Variables.ToDictionary(v => v.Name);
            var inputNames = spec.Inputs.Select(v => v.Name).ToList();
            var stageInputs = new List<StageInputPlan>[stageCount];
            var stageOutputs = Enumerable.Range(0, stageCount).Select(_ => new List<string>()).ToArray();
            for (int stage = 0; stage < stageCount; stage++)
            {
                stageInputs[stage] = new List<StageInputPlan>();
                foreach (string name in FlowsInto(statements, starts[stage], stageEnds[stage]))
                {
                    int producer = LastIndex(stage, p => WritesIn(statements, starts[p], stageEnds[p], name));
                    var variable = variables[name];
                    if (producer < 0 && !inputNames.Contains(name)) continue; // not definitely assigned before: the compiler reports it
                    if (!variable.IsTensor)
                    {
                        var firstUse = Enumerable.Range(starts[stage], stageEnds[stage] - starts[stage] + 1).First(i => statements[i].FlowsIn.Contains(name));
                        string source = producer < 0 ? "forward's arguments" : $"stage {producer}";
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NonTensorCrossesBoundary, statements[firstUse].Location, name, variable.Type, source, stage));
                        continue;
                    }
                    if (producer < 0)
                    {
                        stageInputs[stage].Add(new StageInputPlan(variable, -1, inputNames.IndexOf(name)));
                    }
                    else
                    {
                        if (!stageOutputs[producer].Contains(name)) stageOutputs[producer].Add(name);
                        stageInputs[stage].Add(new StageInputPlan(variable, producer, stageOutputs[producer].IndexOf(name)));
                    }
                }
            }
            if (HasErrors(diagnostics)) return new PlanResult(null, diagnostics.ToEquatableArray());

            var kind = (ScheduleKind)spec.Schedule;
            var links = new StageLinks(
                stageCount,
                stageInputs.SelectMany((inputs, stage) => inputs.Where(i => i.FromStage >= 0).Select(i => (i.FromStage, stage))),
                Enumerable.Range(0, stageCount).ToArray());
            ScheduleTable table;
            try
            {
                table = ScheduleBuilder.Build(kind, links, spec.Microbatches);
            }
            catch (InvalidScheduleException e)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidSchedule, spec.AttributeLocation, kind, spec.Type.Name, e.Message));
                return new PlanResult(null, diagnostics.ToEquatableArray());
            }

            var stagesPlan = Enumerable.Range(0, stageCount).Select(stage => new StagePlan(
                stage,
                starts[stage],
                stageEnds[stage],
                stageInputs[stage].ToEquatableArray(),
                stageOutputs[stage].Select(n => variables[n]).ToEquatableArray(),
                spec.Modules.Where(m => Enumerable.Range(starts[stage], stageEnds[stage] - starts[stage] + 1).Any(i => statements[i].Modules.Contains(m.Name))).ToEquatableArray(),
                Enumerable.Range(starts[stage], stageEnds[stage] - starts[stage] + 1).Select(i => statements[i].Code).ToEquatableArray(),
                Enumerable.Range(starts[stage], stageEnds[stage] - starts[stage] + 1).Any(i => statements[i].UsesModel)));

            var plan = new PipelinePlan(spec.Type, spec.Inputs, stagesPlan.ToEquatableArray(), spec.Schedule, kind.ToString(), spec.Microbatches, table.Format().ToEquatableArray());
            return new PlanResult(plan, diagnostics.ToEquatableArray());
        }

        /// <summary>The statement index after which each stage but the last ends, ascending; reports unusable split points.</summary>
        private static int[] SplitPoints(PipelineModelSpec spec, List<DiagnosticInfo> diagnostics)
        {
            var statements = spec.Statements;
            var ends = new SortedDictionary<int, string>();
            foreach (var member in spec.Modules.Where(m => m.IsSplitEnd))
            {
                int last = LastIndex(statements.Count, i => statements[i].Modules.Contains(member.Name));
                if (last < 0)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotUsed, member.Location, member.Name));
                }
                else if (ends.TryGetValue(last, out string? other))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, member.Location, ends.Keys.ToList().IndexOf(last) + 1, spec.Type.Name,
                        $"[SplitEnd] members '{other}' and '{member.Name}' are called in the same statement; split that statement in two or keep one [SplitEnd]"));
                }
                else if (last == statements.Count - 1)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, member.Location, ends.Count + 1, spec.Type.Name,
                        $"[SplitEnd] member '{member.Name}' is called in the last statement of forward, so nothing is left for a stage after it; remove the attribute from the last submodule"));
                }
                else
                {
                    ends[last] = member.Name;
                }
            }
            if (spec.Modules.All(m => !m.IsSplitEnd))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SingleStage, spec.AttributeLocation, spec.Type.Name));
            return ends.Keys.ToArray();
        }

        /// <summary>
        /// Variables whose value from before statement <paramref name="first"/> is read in [first, last]: read by a
        /// statement and not always assigned by an earlier statement of the range (sequential composition of the
        /// per-statement data flow).
        /// </summary>
        private static IEnumerable<string> FlowsInto(EquatableArray<StatementSpec> statements, int first, int last)
        {
            var seen = new HashSet<string>();
            var killed = new HashSet<string>();
            for (int i = first; i <= last; i++)
            {
                foreach (string name in statements[i].FlowsIn)
                    if (!killed.Contains(name) && seen.Add(name)) yield return name;
                foreach (string name in statements[i].AlwaysAssigned) killed.Add(name);
            }
        }

        public static bool HasErrors(IEnumerable<DiagnosticInfo> diagnostics) =>
            diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);

        /// <summary>The largest i below <paramref name="count"/> with <paramref name="predicate"/>(i), or -1.</summary>
        private static int LastIndex(int count, Func<int, bool> predicate)
        {
            for (int i = count - 1; i >= 0; i--)
                if (predicate(i)) return i;
            return -1;
        }

        private static bool WritesIn(EquatableArray<StatementSpec> statements, int first, int last, string name) =>
            Enumerable.Range(first, last - first + 1).Any(i => statements[i].Written.Contains(name));
    }
}
