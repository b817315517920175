using System;

namespace Pippy
{
    /// <summary>
    /// Marks a submodule field of a <see cref="PipelineAttribute"/> model: the current stage ends right after the
    /// top-level statement of <c>forward</c> that (last) uses this field, and the next stage starts.
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class SplitEndAttribute : Attribute
    {
    }
}
