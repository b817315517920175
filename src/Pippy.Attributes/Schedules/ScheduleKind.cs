namespace Pippy.Schedules
{
    /// <summary>The pipeline schedules Pippy can compute.</summary>
    public enum ScheduleKind
    {
        /// <summary>Fill-drain: all forwards of every microbatch, then all backwards (GPipe).</summary>
        GPipe = 0,
    }
}
