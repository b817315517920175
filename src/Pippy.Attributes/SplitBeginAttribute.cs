using System;

namespace Pippy
{
    /// <summary>
    /// Marks a submodule field of a <see cref="PipelineAttribute"/> model: a new stage starts right before the
    /// top-level statement of <c>forward</c> that uses this field (the counterpart of <see cref="SplitEndAttribute"/>,
    /// for the submodule that opens a stage rather than the one that closes it).
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class SplitBeginAttribute : Attribute
    {
    }
}
