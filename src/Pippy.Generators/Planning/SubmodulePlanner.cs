namespace Pippy.Generators.Planning
{
    /// <summary>
    /// The submodules each stage holds (a [SplitInto] list's part on the stage of that part), and the parameters held
    /// by several stages: a submodule used by several stages (replicated, info PIPPY0008) and each [TiedWeight] group
    /// whose members sit on different stages.
    /// </summary>
    internal static class SubmodulePlanner
    {
        /// <summary>Per stage, the submodules its units use, in the model's member order.</summary>
        public static List<StageModulePlan>[] PerStage(PipelineModelSpec spec, StageCut cut) =>
            Enumerable.Range(0, cut.Count).Select(stage => spec.Modules
                .Select(m => (Member: m, Unit: cut[stage].Cast<Unit?>().FirstOrDefault(u => spec.Statements[u!.Value.Statement].Uses(m.Name))))
                .Where(x => x.Unit is not null)
                .Select(x => x.Unit!.Value.List?.Name == x.Member.Name
                    ? new StageModulePlan(x.Member, x.Unit.Value.Part, x.Member.SplitInto)
                    : new StageModulePlan(x.Member, 0, 0))
                .ToList()).ToArray();

        /// <summary>The parameter groups held by several stages; reports each replicated submodule and each [TiedWeight] group with fewer than two used members.</summary>
        public static List<ReplicaGroupPlan> Replicated(PipelineModelSpec spec, IReadOnlyList<List<StageModulePlan>> stageModules, List<DiagnosticInfo> diagnostics)
        {
            int stageCount = stageModules.Count;
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
            return replicated;
        }
    }
}
