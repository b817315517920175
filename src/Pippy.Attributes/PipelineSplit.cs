namespace Pippy
{
    /// <summary>
    /// An inline split point for a <see cref="PipelineAttribute"/> model's <c>forward</c>: the statement
    /// <c>PipelineSplit.Here();</c> ends the current stage where it stands, between the statements before and after it.
    /// </summary>
    /// <remarks>
    /// It lives here, not on the generated nested <c>Pipeline</c> class, because a source generator reads the user's
    /// code without its own output: a <c>Pipeline.Split()</c> would not bind while the generator analyses forward (and
    /// would break the plain model's build whenever the generator emits nothing). The method does nothing; the
    /// generator leaves the statement out of the stages, so it costs the plain model one empty call.
    /// </remarks>
    public static class PipelineSplit
    {
        /// <summary>Ends the current stage here. Only as a statement of its own at the top level of forward's body.</summary>
        public static void Here()
        {
        }
    }
}
