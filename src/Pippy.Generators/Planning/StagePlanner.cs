using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Generators.Diagnostics;
using Pippy.Generators.Model;
using Pippy.Schedules;

namespace Pippy.Generators.Planning
{
    /// <summary>
    /// Cuts forward's statements into stages, works out from the statements' data flow which values each stage takes
    /// and makes (a value goes straight from the stage that last wrote it to every stage that reads it), which
    /// parameters live on several stages, and builds the schedule table with the same code the runtime uses.
    /// </summary>
    /// <remarks>
    /// The unit of cutting is a statement, except the loop over a [SplitInto(k)] list, which is k units (its parts);
    /// a stage ends after the last statement using a [SplitEnd] member and after each part of a split loop but the last.
    /// </remarks>
    internal static class StagePlanner
    {
        /// <summary>A statement, or part <see cref="Part"/> of the loop over list <see cref="List"/> (Part = -1 for a whole statement).</summary>
        private readonly record struct Unit(int Statement, int Part, MemberSpec? List);

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
            var listLoops = ListLoops(spec, diagnostics);
            var splitAfter = SplitEndStatements(spec, diagnostics);
            if (spec.Modules.All(m => !m.IsSplitEnd && m.SplitInto < 2))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SingleStage, spec.AttributeLocation, spec.Type.Name));
            if (HasErrors(diagnostics)) return Failed(diagnostics);

            // Units, and the stages they form.
            var stages = new List<List<Unit>> { new() };
            for (int i = 0; i < statements.Count; i++)
            {
                int parts = listLoops.TryGetValue(i, out var list) ? list.SplitInto : 0;
                for (int part = 0; part < Math.Max(parts, 1); part++)
                {
                    stages[stages.Count - 1].Add(new Unit(i, parts > 0 ? part : -1, list));
                    bool lastUnit = parts == 0 || part == parts - 1;
                    if ((parts > 0 && part < parts - 1) || (lastUnit && splitAfter.ContainsKey(i))) stages.Add(new List<Unit>());
                }
            }
            if (stages[stages.Count - 1].Count == 0)
            {
                var member = splitAfter[statements.Count - 1];
                string fix = member.IsSequential && statements[statements.Count - 1].Returns
                    ? $"to divide the Sequential '{member.Name}' among stages, replace [SplitEnd] with [SplitInto(k)] (k stages of its children), or remove the attribute"
                    : "remove the attribute from the last submodule";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, member.Location, stages.Count - 1, spec.Type.Name,
                    $"[SplitEnd] member '{member.Name}' is called in the last statement of forward, so nothing is left for a stage after it; {fix}"));
                return Failed(diagnostics);
            }
            int stageCount = stages.Count;
            int StageOf(int statement) => stages.FindIndex(units => units.Any(u => u.Statement == statement));

            for (int i = 0; i < statements.Count; i++)
            {
                if (statements[i].Returns && StageOf(i) < stageCount - 1)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReturnBeforeLastStage, statements[i].Location, StageOf(i), spec.Type.Name));
            }

            diagnostics.AddRange(UsingDeclarations.Check(statements, StageOf, stageCount));
            var scopeVariables = UsingDeclarations.ScopeVariables(statements);

            // Values: what each stage reads from before it, and where each value comes from.
            var variables = spec.Variables.ToDictionary(v => v.Name);
            var inputNames = spec.Inputs.Select(v => v.Name).ToList();
            var stageInputs = Enumerable.Range(0, stageCount).Select(_ => new List<StageInputPlan>()).ToArray();
            var stageOutputs = Enumerable.Range(0, stageCount).Select(_ => new List<string>()).ToArray();
            for (int stage = 0; stage < stageCount; stage++)
            {
                var units = stages[stage].Select(u => statements[u.Statement]).ToList();
                foreach (string name in FlowsInto(units))
                {
                    if (scopeVariables.Contains(name)) continue; // a dispose scope: every later stage opens its own
                    int producer = LastIndex(stage, p => stages[p].Any(u => statements[u.Statement].Written.Contains(name)));
                    if (producer < 0 && !inputNames.Contains(name)) continue; // not definitely assigned before: the compiler reports it
                    var variable = variables[name];
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

            // Submodules per stage, and those on several stages.
            var stageModules = Enumerable.Range(0, stageCount).Select(stage => spec.Modules
                .Select(m => (Member: m, Unit: stages[stage].Cast<Unit?>().FirstOrDefault(u => statements[u!.Value.Statement].Uses(m.Name))))
                .Where(x => x.Unit is not null)
                .Select(x => x.Unit!.Value.List?.Name == x.Member.Name
                    ? new StageModulePlan(x.Member, x.Unit.Value.Part, x.Member.SplitInto)
                    : new StageModulePlan(x.Member, 0, 0))
                .ToList()).ToArray();
            var replicated = new List<ReplicaGroupPlan>();
            foreach (var member in spec.Modules.Where(m => m.SplitInto < 2))
            {
                var holders = Enumerable.Range(0, stageCount).Where(s => stageModules[s].Any(m => m.Member.Name == member.Name)).ToArray();
                if (holders.Length < 2) continue;
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SharedModuleReplicated, member.Location, member.Name, string.Join(" and ", holders)));
                replicated.Add(new ReplicaGroupPlan(member.Name, holders.Select(s => new ReplicaPlan(s, member.Name, true)).ToEquatableArray()));
            }
            foreach (var group in spec.Modules.Where(m => m.TiedGroup.Length > 0).GroupBy(m => m.TiedGroup))
            {
                var replicas = group
                    .SelectMany(member => Enumerable.Range(0, stageCount)
                        .Where(s => stageModules[s].Any(m => m.Member.Name == member.Name))
                        .Select(s => new ReplicaPlan(s, $"{member.Name}.{member.TiedParameter}", false)))
                    .ToArray();
                int usedMembers = group.Count(member => replicas.Any(r => r.Path.StartsWith(member.Name + ".", StringComparison.Ordinal)));
                if (usedMembers < 2)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LonelyTiedWeight, group.First().Location, group.Key, usedMembers));
                    continue;
                }
                // Members on one stage share the parameter object the model's constructor tied; only other stages need messages.
                var perStage = replicas.GroupBy(r => r.Stage).Select(g => g.First()).ToArray();
                if (perStage.Length > 1) replicated.Add(new ReplicaGroupPlan($"tied '{group.Key}'", perStage.ToEquatableArray()));
            }
            if (HasErrors(diagnostics)) return Failed(diagnostics);

            var kind = spec.ScheduleFile.Length > 0 ? ScheduleKind.Custom : (ScheduleKind)spec.Schedule;
            var edges = stageInputs.SelectMany((inputs, stage) => inputs.Where(i => i.FromStage >= 0).Select(i => (i.FromStage, stage))).ToArray();
            ScheduleTable table;
            try
            {
                if (kind == ScheduleKind.Custom)
                {
                    var file = files.FirstOrDefault(f => f.Name == spec.ScheduleFile || f.Path.Replace('\\', '/').EndsWith("/" + spec.ScheduleFile.Replace('\\', '/'), StringComparison.Ordinal));
                    if (file is null)
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ScheduleFileNotFound, spec.AttributeLocation, spec.ScheduleFile));
                        return Failed(diagnostics);
                    }
                    table = CsvSchedule.Load(file.Text, spec.ScheduleFile, edges, stageCount);
                }
                else
                {
                    table = ScheduleBuilder.Build(kind, ScheduleBuilder.Links(kind, stageCount, spec.StagesPerRank, edges), spec.Microbatches);
                }
            }
            catch (InvalidScheduleException e)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidSchedule, spec.AttributeLocation, kind, spec.Type.Name, e.Message));
                return Failed(diagnostics);
            }

            var stagesPlan = Enumerable.Range(0, stageCount).Select(stage => new StagePlan(
                stage,
                stages[stage][0].Statement,
                stages[stage][stages[stage].Count - 1].Statement,
                stageInputs[stage].ToEquatableArray(),
                OuterLocals(stages[stage].Select(u => statements[u.Statement]), stageInputs[stage]).Select(n => variables[n]).ToEquatableArray(),
                stageOutputs[stage].Select(n => variables[n]).ToEquatableArray(),
                stageModules[stage].ToEquatableArray(),
                stages[stage].Select(u => UsingDeclarations.Code(statements[u.Statement], stageOutputs[stage])).ToEquatableArray(),
                stages[stage].Any(u => statements[u.Statement].UsesModel),
                UsingDeclarations.ScopesBefore(statements, stages[stage][0].Statement).Select(s => s.Code).ToEquatableArray(),
                UsingDeclarations.OpenScopes(statements, stages[stage].Select(u => u.Statement)).ToEquatableArray()));

            var plan = new PipelinePlan(spec.Type, spec.Inputs, spec.Output, stagesPlan.ToEquatableArray(), replicated.ToEquatableArray(),
                kind.ToString(), table.Microbatches, stageCount / table.RankCount, table.Format().ToEquatableArray());
            return new PlanResult(plan, diagnostics.ToEquatableArray());
        }

        private static PlanResult Failed(List<DiagnosticInfo> diagnostics) => new(null, diagnostics.ToEquatableArray());

        /// <summary>The statement index of each [SplitInto] list's loop; reports lists not run by exactly one top-level loop.</summary>
        private static Dictionary<int, MemberSpec> ListLoops(PipelineModelSpec spec, List<DiagnosticInfo> diagnostics)
        {
            var loops = new Dictionary<int, MemberSpec>();
            foreach (var list in spec.Modules.Where(m => m.SplitInto >= 2))
            {
                var users = Enumerable.Range(0, spec.Statements.Count).Where(i => spec.Statements[i].Uses(list.Name)).ToArray();
                string? problem = users.Length == 0 ? "not used in forward"
                    : users.Length > 1 ? $"used by {users.Length} statements"
                    : list.IsSequential && spec.Statements[users[0]].SequentialCall != list.Name
                        ? $"a Sequential used by a statement other than '{list.Name}'s forward called on one tensor variable and assigned back to it or returned"
                    : !list.IsSequential && !spec.Statements[users[0]].IsLoop ? "used by a statement that is not a loop"
                    : loops.TryGetValue(users[0], out var other) ? $"run by the same loop as [SplitInto] list '{other.Name}'"
                    : null;
                if (problem is null) loops[users[0]] = list;
                else diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoNotOneLoop, list.Location, list.Name, problem));
            }
            return loops;
        }

        /// <summary>The statement after which each [SplitEnd] member ends its stage; reports unusable split points.</summary>
        private static Dictionary<int, MemberSpec> SplitEndStatements(PipelineModelSpec spec, List<DiagnosticInfo> diagnostics)
        {
            var statements = spec.Statements;
            var ends = new Dictionary<int, MemberSpec>();
            foreach (var member in spec.Modules.Where(m => m.IsSplitEnd))
            {
                int direct = statements.Sum(s => s.ModuleReferences.Count(r => r == member.Name));
                // Used inside methods of the model that forward calls: the split is after the statement making the call.
                var throughMethods = Enumerable.Range(0, statements.Count)
                    .SelectMany(i => statements[i].MethodUses.Where(u => u.Member == member.Name).Select(u => (Statement: i, Use: u)))
                    .ToList();
                int uses = direct + throughMethods.Select(u => u.Statement).Distinct().Count();
                int statement = LastIndex(statements.Count, i => statements[i].Uses(member.Name));
                var callers = Enumerable.Range(0, statements.Count).Where(i => statements[i].Uses(member.Name)).ToList();
                if (uses == 0)
                {
                    var elsewhere = spec.UnreachedUses.Where(u => u.Member == member.Name).Select(u => $"'{u.Method}'").ToList();
                    string where = elsewhere.Count == 0 ? ""
                        : $" (it is used in {string.Join(" and ", elsewhere)}, which forward does not call, or calls only through code the generator cannot follow)";
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotUsed, member.Location, member.Name, where));
                }
                else if (throughMethods.Count > 0 && callers.Count > 1)
                {
                    string methods = string.Join(" and ", throughMethods.Select(u => $"'{u.Use.Method}'").Distinct());
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndInMethodCalledTwice, member.Location, member.Name, methods, callers.Count));
                }
                else if (throughMethods.Count == 0 && uses > 1)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndUsedTwice, member.Location, member.Name, uses));
                else if (statements[statement].ModulesInBranches.Contains(member.Name) || throughMethods.Any(u => u.Use.InBranch))
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitInsideBranch, member.Location, member.Name));
                else if (ends.TryGetValue(statement, out var other))
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, member.Location, ends.Keys.Count(k => k < statement) + 1, spec.Type.Name,
                        $"[SplitEnd] members '{other.Name}' and '{member.Name}' are called in the same statement; split that statement in two or keep one [SplitEnd]"));
                else
                    ends[statement] = member;
            }
            return ends;
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

        /// <summary>Variables the units assign that are neither declared in them nor stage inputs: the stage must declare them.</summary>
        private static IEnumerable<string> OuterLocals(IEnumerable<StatementSpec> units, IEnumerable<StageInputPlan> inputs)
        {
            var list = units.ToList();
            var declared = new HashSet<string>(list.SelectMany(u => u.Declared).Concat(inputs.Select(i => i.Variable.Name)));
            return list.SelectMany(u => u.Written).Where(name => !declared.Contains(name)).Distinct();
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
    }
}
