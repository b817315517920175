using System;
using System.Runtime.InteropServices;
using Pippy.Runtime.Native;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>PIPPY_MALLOC: freed memory is kept for reuse (large blocks from the heap, not from mmap), or glibc's defaults.</summary>
public class MallocTuningTests
{
    [StructLayout(LayoutKind.Sequential)]
    private struct MallocInfo
    {
        public nuint Arena, OrdinaryBlocks, SmallBlocks, MappedBlocks, MappedBytes, MaxUsed, FreeSmallBytes, UsedBytes, FreeBytes, KeepCost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallocInfo Info();

    [Fact]
    public void AfterTheTuningA4MiBBlockComesFromTheHeapNotFromMmap()
    {
        Assert.True(MallocTuning.Apply(null), "mallopt refused the tuning");
        var before = Info().MappedBytes;
        IntPtr block = Marshal.AllocHGlobal(4 << 20);
        try
        {
            // glibc's default would map a block this size on its own (its threshold starts at 128 KiB).
            Assert.True(Info().MappedBytes < before + (4u << 20), "the 4 MiB block was mapped on its own: the tuning did not take");
        }
        finally
        {
            Marshal.FreeHGlobal(block);
        }
    }

    [Fact]
    public void SystemLeavesGlibcAloneAndAnUnknownValueSaysWhatItTakes()
    {
        Assert.False(MallocTuning.Apply("system"));
        Assert.Equal("PIPPY_MALLOC=fast: use keep (the default: freed memory is kept for reuse) or system (glibc's defaults).",
            Assert.Throws<ArgumentException>(() => MallocTuning.Apply("fast")).Message);
    }
}
