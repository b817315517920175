namespace Pippy.Generators.Planning
{
    /// <summary>
    /// Top-level <c>using var</c> declarations of forward in a pipeline. In the plain model each is disposed when forward
    /// ends; in a stage, when the stage's forward ends. So: a tensor declared with <c>using</c> that leaves its stage
    /// (sent to a later stage) is declared without <c>using</c> there (the runner's dispose scope of the step frees it);
    /// a <c>torch.NewDisposeScope()</c> is opened again at the start of every later stage, and each stage moves its
    /// outputs out of the scopes it has open before returning them; any other disposable (a no_grad guard) may only be
    /// declared in the last stage (PIPPY0025).
    /// </summary>
    internal static class UsingDeclarations
    {
        /// <summary>The statement's code in a stage with <paramref name="outputs"/>: without <c>using</c> when it declares one of them.</summary>
        public static string Code(StatementSpec statement, IEnumerable<string> outputs) =>
            statement.Using is { Kind: UsingKind.Tensor } declaration && declaration.Names.Any(outputs.Contains)
                ? declaration.CodeWithoutUsing
                : statement.Code;

        /// <summary>Statements before <paramref name="firstStatement"/> that open a dispose scope: a later stage opens them again.</summary>
        public static IEnumerable<StatementSpec> ScopesBefore(EquatableArray<StatementSpec> statements, int firstStatement) =>
            statements.Take(firstStatement).Where(s => s.Using is { Kind: UsingKind.DisposeScope });

        /// <summary>The dispose-scope variables open at the end of a stage, outermost first: those opened again and the stage's own.</summary>
        public static IEnumerable<string> OpenScopes(EquatableArray<StatementSpec> statements, IEnumerable<int> stageStatements)
        {
            var own = stageStatements.Distinct().OrderBy(i => i).ToList();
            return ScopesBefore(statements, own.Count == 0 ? 0 : own[0])
                .Concat(own.Select(i => statements[i]).Where(s => s.Using is { Kind: UsingKind.DisposeScope }))
                .SelectMany(s => s.Using!.Names);
        }

        /// <summary>Variables that each stage declares for itself (dispose scopes, opened again): not values to receive.</summary>
        public static HashSet<string> ScopeVariables(EquatableArray<StatementSpec> statements) =>
            new(statements.Where(s => s.Using is { Kind: UsingKind.DisposeScope }).SelectMany(s => s.Using!.Names));

        /// <summary>PIPPY0025 for a using declaration of anything but tensors and dispose scopes before the last stage.</summary>
        public static IEnumerable<DiagnosticInfo> Check(EquatableArray<StatementSpec> statements, System.Func<int, int> stageOf, int stageCount)
        {
            for (int i = 0; i < statements.Count; i++)
            {
                if (statements[i].Using is not { Kind: UsingKind.Other } declaration) continue;
                int stage = stageOf(i);
                if (stage < stageCount - 1)
                    yield return DiagnosticInfo.Create(DiagnosticDescriptors.UsingEndsWithStage, statements[i].Location,
                        string.Join("', '", declaration.Names), declaration.Type, stage);
            }
        }
    }
}
