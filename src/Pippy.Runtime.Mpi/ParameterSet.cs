using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Native;
using TorchSharp.Modules;

namespace Pippy.Runtime
{
    /// <summary>Parameters compared by the memory they hold, not by wrapper object.</summary>
    public static class ParameterSet
    {
        /// <summary>
        /// Each parameter once. TorchSharp lists a tied parameter under each of its names, as separate wrapper objects
        /// of one tensor; an optimizer given both would step it twice and a norm would count it twice. Hand this to
        /// optimizers and <c>clip_grad_norm_</c> (the plain model's too) to get PyTorch's once-each behaviour.
        /// </summary>
        public static Parameter[] Distinct(IEnumerable<Parameter> parameters) =>
            parameters.GroupBy(TorchNative.DataPointer).Select(g => g.First()).ToArray();

        /// <summary>True when both wrap the same tensor memory.</summary>
        public static bool Same(Parameter a, Parameter b) => TorchNative.DataPointer(a) == TorchNative.DataPointer(b);
    }
}
