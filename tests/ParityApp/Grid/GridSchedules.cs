using System.Collections.Generic;
using System.Linq;
using Pippy.Schedules;

namespace ParityApp.Grid;

/// <summary>
/// One schedule and placement of the grid's 4-stage models. <see cref="Refusal"/> is what Build must say when the
/// combination is not supported (written here by hand, not asked of the code under test), null when it must run.
/// </summary>
public sealed record GridSchedule(string Name, ScheduleKind Kind, int StagesPerRank, string? Csv = null, string? Refusal = null)
{
    public int PipelineRanks => 4 / StagesPerRank;

    public string Placement => StagesPerRank == 1 ? "1 stage per rank" : Kind is ScheduleKind.ZeroBubbleV or ScheduleKind.DualPipeV ? "2 per rank in a V" : "2 per rank looped";

    /// <summary>Every schedule kind on every placement: 1 stage per rank (4 ranks) and 2 per rank (2 ranks), looped or in a V as the kind places them.</summary>
    public static IReadOnlyList<GridSchedule> All { get; } = new[]
    {
        new GridSchedule("GPipe", ScheduleKind.GPipe, 1),
        new GridSchedule("1F1B", ScheduleKind.OneFOneB, 1),
        new GridSchedule("interleaved-1F1B", ScheduleKind.Interleaved1F1B, 1),
        new GridSchedule("looped-BFS", ScheduleKind.LoopedBFS, 1),
        new GridSchedule("ZB-H1", ScheduleKind.InterleavedZeroBubble, 1),
        new GridSchedule("CSV", ScheduleKind.Custom, 1, Csv: OneFOneBWithSplitLastStage),
        new GridSchedule("interleaved-1F1B", ScheduleKind.Interleaved1F1B, 2),
        new GridSchedule("looped-BFS", ScheduleKind.LoopedBFS, 2),
        new GridSchedule("interleaved-ZB", ScheduleKind.InterleavedZeroBubble, 2),
        new GridSchedule("ZB-V", ScheduleKind.ZeroBubbleV, 2),
        new GridSchedule("DualPipeV", ScheduleKind.DualPipeV, 2),
        new GridSchedule("CSV", ScheduleKind.Custom, 2, Csv: VWithSplitBackward),
        // Not supported: Build refuses them, naming what to use instead.
        new GridSchedule("GPipe", ScheduleKind.GPipe, 2, Refusal: "GPipe runs one stage per rank, but StagesPerRank = 2; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble"),
        new GridSchedule("1F1B", ScheduleKind.OneFOneB, 2, Refusal: "OneFOneB runs one stage per rank, but StagesPerRank = 2; use Interleaved1F1B, LoopedBFS or InterleavedZeroBubble"),
        new GridSchedule("ZB-V", ScheduleKind.ZeroBubbleV, 1, Refusal: "ZeroBubbleV places exactly 2 stages per rank in a V, but StagesPerRank = 1; set StagesPerRank = 2"),
        new GridSchedule("DualPipeV", ScheduleKind.DualPipeV, 1, Refusal: "DualPipeV places exactly 2 stages per rank in a V, but StagesPerRank = 1; set StagesPerRank = 2"),
    };

    /// <summary>1F1B by hand for 4 stages and 4 microbatches, the last stage's backward split into I and W.</summary>
    private const string OneFOneBWithSplitLastStage =
        "0F0,0F1,0F2,0F3,0B0,0B1,0B2,0B3\n" +
        "1F0,1F1,1F2,1B0,1F3,1B1,1B2,1B3\n" +
        "2F0,2F1,2B0,2F2,2B1,2F3,2B2,2B3\n" +
        "3F0,3I0,3F1,3I1,3W0,3F2,3I2,3W1,3F3,3I3,3W2,3W3\n";

    /// <summary>Stages 0 and 3 on rank 0, 1 and 2 on rank 1 (a V), all forwards then all backwards, stage 0's backward split.</summary>
    private const string VWithSplitBackward =
        "0F0,0F1,0F2,0F3,3F0,3B0,3F1,3B1,3F2,3B2,3F3,3B3,0I0,0I1,0W0,0I2,0W1,0I3,0W2,0W3\n" +
        "1F0,1F1,1F2,1F3,2F0,2F1,2F2,2F3,2B0,2B1,2B2,2B3,1B0,1B1,1B2,1B3\n";

    public override string ToString() => $"{Name} ({Placement})";

    public static IEnumerable<GridSchedule> Supported => All.Where(s => s.Refusal is null);
}
