namespace Pippy.Schedules
{
    /// <summary>
    /// Zero-bubble V (ZB-V): two stages per rank in a V (rank r holds stages r and 2p-1-r), backward split into I and
    /// W, ordered by <see cref="ZeroBubbleSchedules"/> within the paper's memory bound of 2p stage-activations per
    /// rank. Any microbatch count.
    /// </summary>
    public sealed class ZeroBubbleVSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.ZeroBubbleV;
        public override string Description => "Zero-bubble V: two stages per rank in a V, backward split into I and W, the W's filling the bubbles.";
        public override StageLayout Layout => StageLayout.V;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches) => ZeroBubbleSchedules.ComputeOnly(this, links, microbatches);
    }
}
