using System;

namespace Pippy
{
    /// <summary>
    /// Recomputes this submodule's activations in the backward instead of keeping them (activation checkpointing of a
    /// block): each call of it in forward keeps only its tensor arguments, runs without building a graph, and its
    /// backward runs it again first, with the random generator as it was, so dropout masks repeat. On a module list
    /// (<c>ModuleList&lt;T&gt;</c> or a Sequential), every block a loop runs is recomputed on its own; a divided Sequential's part
    /// is recomputed as one block. The stages' gradients are the plain model's. Whole stages are recomputed with
    /// <c>PipelineOptions.Recompute</c> instead.
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class RecomputeAttribute : Attribute
    {
    }
}
