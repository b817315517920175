namespace Pippy.Generators.Planning
{
    /// <summary>A statement, or part <see cref="Part"/> of the loop over list <see cref="List"/> (Part = -1 for a whole statement).</summary>
    internal readonly record struct Unit(int Statement, int Part, MemberSpec? List);

    /// <summary>forward's units cut into stages: stage k runs <c>this[k]</c>, in order.</summary>
    internal sealed class StageCut
    {
        private readonly EquatableArray<StatementSpec> _statements;
        private readonly List<List<Unit>> _stages;

        public StageCut(EquatableArray<StatementSpec> statements, List<List<Unit>> stages)
        {
            _statements = statements;
            _stages = stages;
        }

        public int Count => _stages.Count;

        public IReadOnlyList<Unit> this[int stage] => _stages[stage];

        /// <summary>The stage that runs <paramref name="statement"/> (the first, for a split loop's statement).</summary>
        public int StageOf(int statement) => _stages.FindIndex(units => units.Any(u => u.Statement == statement));

        /// <summary>The statements of the stage's units, one per unit (a split loop's statement once per part).</summary>
        public IEnumerable<StatementSpec> Statements(int stage) => _stages[stage].Select(u => _statements[u.Statement]);
    }

    /// <summary>
    /// Cuts forward's statements into stages. The unit of cutting is a statement, except the loop over a
    /// [SplitInto(k)] list, which is k units (its parts); a stage ends after the statement using a [SplitEnd]
    /// member, before the statement using a [SplitBegin] member, at each <c>PipelineSplit.Here();</c> marker, and after
    /// each part of a split loop but the last. Reports split points that cannot be used.
    /// </summary>
    internal static class StageCutter
    {
        /// <summary>The stages, or null when an error leaves nothing to cut (the diagnostics say why).</summary>
        public static StageCut? Cut(PipelineModelSpec spec, List<DiagnosticInfo> diagnostics)
        {
            var statements = spec.Statements;
            var listLoops = ListLoops(spec, diagnostics);
            var splitAfter = SplitPoints(spec, diagnostics);
            if (spec.Modules.All(m => !m.IsSplitEnd && !m.IsSplitBegin && m.SplitInto < 2) && spec.SplitMarkers.Count == 0)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SingleStage, spec.AttributeLocation, spec.Type.Name));
            if (StagePlanner.HasErrors(diagnostics)) return null;

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
                var member = splitAfter[statements.Count - 1].Member!;
                string fix = member.IsSequential && statements[statements.Count - 1].Returns
                    ? $"to divide the Sequential '{member.Name}' among stages, replace [SplitEnd] with [SplitInto(k)] (k stages of its children), or remove the attribute"
                    : "remove the attribute from the last submodule";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, member.Location, stages.Count - 1, spec.Type.Name,
                    $"[SplitEnd] member '{member.Name}' is called in the last statement of forward, so nothing is left for a stage after it; {fix}"));
                return null;
            }
            var cut = new StageCut(statements, stages);

            for (int i = 0; i < statements.Count; i++)
            {
                if (statements[i].Returns && cut.StageOf(i) < cut.Count - 1)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReturnBeforeLastStage, statements[i].Location, cut.StageOf(i), spec.Type.Name));
            }
            return cut;
        }

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

        /// <summary>
        /// The statement after which the stage ends, for each split point: a [SplitEnd] member's statement, the statement
        /// before a [SplitBegin] member's, the statement before a <c>PipelineSplit.Here();</c> marker (-1 when the marker or
        /// the [SplitBegin] statement comes first). Reports unusable split points, and two that cut at one place (an
        /// empty stage between them).
        /// </summary>
        private static Dictionary<int, SplitPoint> SplitPoints(PipelineModelSpec spec, List<DiagnosticInfo> diagnostics)
        {
            var candidates = new List<(int After, SplitPoint Point)>();
            foreach (var member in spec.Modules.Where(m => m.IsSplitEnd))
                if (MemberStatement(spec, member, "SplitEnd", diagnostics) is int statement)
                    candidates.Add((statement, new SplitPoint($"[SplitEnd] member '{member.Name}'", member.Location, member)));
            foreach (var member in spec.Modules.Where(m => m.IsSplitBegin))
                if (MemberStatement(spec, member, "SplitBegin", diagnostics) is int statement)
                    candidates.Add((statement - 1, new SplitPoint($"[SplitBegin] member '{member.Name}'", member.Location, member)));
            foreach (var marker in spec.SplitMarkers)
                candidates.Add((marker.AfterStatement, new SplitPoint($"the PipelineSplit.Here() after statement {marker.AfterStatement + 1} of forward", marker.Location, null)));

            var points = new Dictionary<int, SplitPoint>();
            int last = spec.Statements.Count - 1;
            foreach (var (after, point) in candidates.OrderBy(c => c.After))
            {
                if (after < 0)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, point.Location, 0, spec.Type.Name,
                        point.Member is null
                            ? "PipelineSplit.Here() is the first statement of forward, so nothing is left for a stage before it; remove it or move it after the statements of the first stage"
                            : $"{point.Name} is called in the first statement of forward, so nothing is left for a stage before it; remove the attribute"));
                else if (after == last && point.Member is null)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, point.Location, points.Count + 1, spec.Type.Name,
                        "PipelineSplit.Here() is the last statement of forward, so nothing is left for a stage after it; remove it or move it before the statements of the last stage"));
                else if (points.TryGetValue(after, out var other))
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.EmptyStage, point.Location, points.Keys.Count(k => k < after) + 1, spec.Type.Name,
                        other.Member is { IsSplitEnd: true } && point.Member is { IsSplitEnd: true }
                            ? $"[SplitEnd] members '{other.Member.Name}' and '{point.Member.Name}' are called in the same statement; split that statement in two or keep one [SplitEnd]"
                            : $"{other.Name} and {point.Name} both split forward after its statement {after + 1}, so no statement is left between them; keep one of the two"));
                else
                    points[after] = point;
            }
            return points;
        }

        /// <summary>The statement that uses a [SplitEnd] or [SplitBegin] member; null (and a diagnostic) when it is not one usable statement.</summary>
        private static int? MemberStatement(PipelineModelSpec spec, MemberSpec member, string attribute, List<DiagnosticInfo> diagnostics)
        {
            var statements = spec.Statements;
            bool begins = attribute == "SplitBegin";
            int direct = statements.Sum(s => s.ModuleReferences.Count(r => r == member.Name));
            // Used inside methods of the model that forward calls: the split is at the statement making the call.
            var throughMethods = Enumerable.Range(0, statements.Count)
                .SelectMany(i => statements[i].MethodUses.Where(u => u.Member == member.Name).Select(u => (Statement: i, Use: u)))
                .ToList();
            int uses = direct + throughMethods.Select(u => u.Statement).Distinct().Count();
            var callers = Enumerable.Range(0, statements.Count).Where(i => statements[i].Uses(member.Name)).ToList();
            if (uses == 0)
            {
                var elsewhere = spec.UnreachedUses.Where(u => u.Member == member.Name).Select(u => $"'{u.Method}'").ToList();
                string where = elsewhere.Count == 0 ? ""
                    : $" (it is used in {string.Join(" and ", elsewhere)}, which forward does not call, or calls only through code the generator cannot follow)";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotUsed, member.Location, member.Name, where, attribute));
                return null;
            }
            if (throughMethods.Count > 0 && callers.Count > 1)
            {
                string methods = string.Join(" and ", throughMethods.Select(u => $"'{u.Use.Method}'").Distinct());
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndInMethodCalledTwice, member.Location, member.Name, methods, callers.Count,
                    attribute, begins ? "before" : "after", begins ? "begins" : "ends"));
                return null;
            }
            if (throughMethods.Count == 0 && uses > 1)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndUsedTwice, member.Location, member.Name, uses, attribute));
                return null;
            }
            int statement = callers[callers.Count - 1];
            if (statements[statement].ModulesInBranches.Contains(member.Name) || throughMethods.Any(u => u.Use.InBranch))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitInsideBranch, member.Location, member.Name, attribute));
                return null;
            }
            return statement;
        }

        /// <summary>What makes a split point (for the diagnostics): its words, where it is written, and the member, if a member's attribute.</summary>
        private sealed record SplitPoint(string Name, LocationInfo? Location, MemberSpec? Member);
    }
}
