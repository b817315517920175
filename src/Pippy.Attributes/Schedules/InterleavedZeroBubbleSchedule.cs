namespace Pippy.Schedules
{
    /// <summary>
    /// Zero-bubble over stages placed in a loop: ZB-H1 on one stage per rank, interleaved for more. The backward is
    /// split into I and W, and <see cref="ZeroBubbleSchedules"/> orders the actions so that the W's fill the bubbles
    /// within 1F1B's memory bound (p - r microbatches on a rank's first stage). Any microbatch count.
    /// </summary>
    public sealed class InterleavedZeroBubbleSchedule : ScheduleDefinition
    {
        public override ScheduleKind Kind => ScheduleKind.InterleavedZeroBubble;
        public override string Description => "Zero-bubble (ZB-H1 on one stage per rank, looped for more): backward split into I and W, the W's filling the bubbles.";
        public override StageLayout Layout => StageLayout.Looped;

        public override ScheduleTable ComputeOnly(StageLinks links, int microbatches) => ZeroBubbleSchedules.ComputeOnly(this, links, microbatches);
    }
}
