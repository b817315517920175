using Pippy.Schedules;

namespace Pippy.Generators.Parsing
{
    /// <summary>
    /// The submodule fields and properties of a [Pipeline] class and their [SplitEnd], [SplitBegin], [TiedWeight] and [SplitInto]
    /// annotations (a [SplitInto] list's element type, or a Sequential's child type).
    /// </summary>
    internal static class MemberReader
    {
        /// <summary>The model's submodule members with their annotations; reports annotations on members they do not fit.</summary>
        public static List<MemberSpec> Read(INamedTypeSymbol type, KnownTypes known, List<DiagnosticInfo> diagnostics)
        {
            var members = new List<MemberSpec>();
            foreach (var member in type.GetMembers())
            {
                ITypeSymbol? memberType = member switch
                {
                    IFieldSymbol { IsStatic: false, IsImplicitlyDeclared: false } f => f.Type,
                    IPropertySymbol { IsStatic: false, IsIndexer: false } p => p.Type,
                    _ => null,
                };
                if (memberType is null) continue;
                var attributes = member.GetAttributes();
                AttributeData? Find(INamedTypeSymbol? attributeType) =>
                    attributes.FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attributeType));
                var splitEnd = Find(known.SplitEnd);
                var splitBegin = Find(known.SplitBegin);
                var tied = Find(known.TiedWeight);
                var splitInto = Find(known.SplitInto);
                var recompute = Find(known.Recompute);
                bool isModule = known.IsModule(memberType);
                var location = LocationInfo.From(member.Locations[0]);
                string typeName = memberType.ToDisplayString();

                if (splitEnd is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotAModule, location, member.Name, typeName, "SplitEnd", "ends"));
                if (splitBegin is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitEndNotAModule, location, member.Name, typeName, "SplitBegin", "begins"));
                if (recompute is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RecomputeNotAModule, location, member.Name, typeName));
                if (tied is not null && !isModule)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TiedWeightNotAModule, location, member.Name, typeName));
                bool isSequential = known.IsSequential(memberType);
                // A Sequential is divided by its children, which run one after the other on one tensor.
                string? elementType = known.ModuleListElement(memberType)?.ToDisplayString(TypeReader.TypeFormat)
                    ?? (isSequential ? SequentialChildType : null);
                int stages = 0;
                if (splitInto is not null)
                {
                    stages = splitInto.ConstructorArguments.Length > 0 && splitInto.ConstructorArguments[0].Value is int k ? k : 0;
                    if (elementType is null)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoNotAList, location, member.Name, typeName));
                    else if (stages < 2)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoTooFew, location, member.Name, stages));
                    else if (stages > ScheduleBuilder.MaxStages)
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoTooMany, location, member.Name, stages));
                    else if (isSequential && known.OverridesSequentialForward(memberType))
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SplitIntoSequentialWithOwnForward, location, member.Name, typeName));
                }
                if (!isModule) continue;
                string group = tied?.ConstructorArguments.ElementAtOrDefault(0).Value as string ?? "";
                string parameter = tied?.ConstructorArguments.ElementAtOrDefault(1).Value as string ?? (tied is null ? "" : "weight");
                members.Add(new MemberSpec(
                    member.Name, memberType.ToDisplayString(TypeReader.TypeFormat), splitEnd is not null, group, parameter,
                    elementType is null ? 0 : stages, elementType ?? "", location, isSequential, splitBegin is not null));
            }
            return members;
        }

        /// <summary>The type a stage runs a divided Sequential's children as.</summary>
        private const string SequentialChildType = "global::TorchSharp.torch.nn.Module<global::TorchSharp.torch.Tensor, global::TorchSharp.torch.Tensor>";
    }
}
