using System;
using System.Linq;
using System.Runtime.InteropServices;

namespace Pippy.Runtime.Native
{
    /// <summary>
    /// Keeps the C heap's freed memory for reuse instead of giving it back to the kernel after every tensor. By default
    /// glibc serves large blocks (a gradient of 1 MiB, say) with mmap and unmaps them when freed, and trims the heap's
    /// top, so a training loop that allocates and frees the same sizes each microbatch faults every page in again each
    /// time: measured on the seed quickstart at 64 microbatches (bench/results/seed.md), 1F1B took 213-238 ms with
    /// glibc's defaults and 94-109 ms with the heap kept. The cost is resident memory that stays at the step's peak,
    /// which a training process reaches every step anyway. PIPPY_MALLOC=system keeps glibc's defaults, and so does any
    /// setting of the user's own (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_MAX_, or
    /// glibc.malloc tunables in GLIBC_TUNABLES).
    /// </summary>
    internal static class MallocTuning
    {
        private const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3;

        /// <summary>Blocks below this come from the heap (glibc's largest allowed threshold on 64-bit: 32 MiB).</summary>
        public const int MmapThresholdBytes = 32 << 20;

        /// <summary>The heap's free top is given back only above this.</summary>
        public const int TrimThresholdBytes = 1 << 30;

        /// <summary>The heap grows by this much more than asked, so that growing is rare.</summary>
        public const int TopPadBytes = 64 << 20;

        /// <summary>glibc's environment variables for what this tuning sets: any of them set leaves the heap to the user.</summary>
        private static readonly string[] UserSettings = { "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" };

        [DllImport("libc", EntryPoint = "mallopt")]
        private static extern int MallocOption(int parameter, int value);

        [DllImport("libc", EntryPoint = "malloc_trim")]
        private static extern int MallocTrim(nuint pad);

        /// <summary>
        /// Gives the heap's free memory back to the kernel (malloc_trim: the free top, and free pages inside the heap),
        /// after a deliberate release of much memory (ReleaseOtherStages), which the kept heap would otherwise hold.
        /// </summary>
        public static void GiveBackFreeMemory()
        {
            if (!OperatingSystem.IsLinux()) return;
            try
            {
                MallocTrim(0);
            }
            catch (EntryPointNotFoundException)
            {
                // Not glibc: nothing was kept.
            }
        }

        /// <summary>Applies the tuning unless PIPPY_MALLOC=system; returns whether it did (false also where the C library is not glibc).</summary>
        public static bool Apply() => Apply(Environment.GetEnvironmentVariable("PIPPY_MALLOC"));

        /// <param name="setting">PIPPY_MALLOC's value: null, empty or keep to tune, system to leave glibc's defaults.</param>
        public static bool Apply(string? setting)
        {
            string? choice = setting?.Trim().ToLowerInvariant();
            if (choice == "system") return false;
            if (choice is not (null or "" or "keep"))
                throw new ArgumentException($"PIPPY_MALLOC={choice}: use keep (the default: freed memory is kept for reuse) or system (glibc's defaults).");
            if (!OperatingSystem.IsLinux()) return false;
            // Settings of the user's own (glibc's MALLOC_* variables or its malloc tunables) win over this tuning.
            if (UserSettings.Any(name => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name)))
                || Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("glibc.malloc.", StringComparison.Ordinal) == true)
                return false;
            try
            {
                // Each call returns 1 on success; a C library without mallopt (musl) throws EntryPointNotFoundException.
                return MallocOption(MmapThreshold, MmapThresholdBytes) == 1
                     & MallocOption(TrimThreshold, TrimThresholdBytes) == 1
                     & MallocOption(TopPad, TopPadBytes) == 1;
            }
            catch (EntryPointNotFoundException)
            {
                return false;
            }
        }
    }
}
