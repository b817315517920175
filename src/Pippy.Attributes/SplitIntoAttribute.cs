using System;

namespace Pippy
{
    /// <summary>
    /// Divides a module list (a <c>ModuleList&lt;T&gt;</c> member run by one <c>foreach</c> or <c>for</c> loop in
    /// forward) into <see cref="Stages"/> consecutive stages, each running a contiguous range of the blocks. The ranges
    /// are computed at run time from the list's blocks, balancing their parameter counts (equal blocks: the first
    /// stages take the remainder), so the number of stages is known at build time and the blocks are not needed
    /// until then.
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class SplitIntoAttribute : Attribute
    {
        public SplitIntoAttribute(int stages) => Stages = stages;

        /// <summary>How many stages the list's loop is divided into (at least 2).</summary>
        public int Stages { get; }
    }
}
