using System;

namespace Pippy
{
    /// <summary>
    /// Ties a parameter of this submodule to the same-named group's parameters on other submodules, typically the
    /// token embedding and the language-model head of different stages. Each stage keeps its copy; the runtime
    /// broadcasts the lowest stage's value when the pipeline is built and sums the copies' gradients after every
    /// step, which is what one shared parameter of the plain model (tied in its constructor) receives.
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class TiedWeightAttribute : Attribute
    {
        /// <param name="group">The tie's name; every member of one group holds the same parameter.</param>
        /// <param name="parameter">The submodule's parameter that is tied (default <c>weight</c>).</param>
        public TiedWeightAttribute(string group, string parameter = "weight")
        {
            Group = group;
            Parameter = parameter;
        }

        public string Group { get; }
        public string Parameter { get; }
    }
}
