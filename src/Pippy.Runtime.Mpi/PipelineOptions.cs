namespace Pippy.Runtime
{
    /// <summary>Run-time choices for a pipeline.</summary>
    public sealed class PipelineOptions
    {
        /// <summary>
        /// How many microbatches each batch is split into (along dimension 0). Null takes the count of the
        /// <c>[Pipeline]</c> attribute, whose table was built at build time; any other count is computed at start.
        /// </summary>
        public int? Microbatches { get; init; }

        /// <summary>Rank 0 prints the plan (stages, schedule, microbatches) when the pipeline is built.</summary>
        public bool PrintPlan { get; init; } = true;
    }
}
