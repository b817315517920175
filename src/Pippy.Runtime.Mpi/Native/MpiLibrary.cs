using System;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Pippy.Runtime.Native
{
    /// <summary>MPI is missing, or is not an MPI that MPI.NET can use.</summary>
    public sealed class MpiUnavailableException : Exception
    {
        public MpiUnavailableException(string message) : base(message) { }
    }

    /// <summary>
    /// Binds MPI.NET to MPICH. MPI.NET 1.4.0 is built for MS-MPI: it imports "msmpi.dll" and uses MS-MPI's integer
    /// handles, which MPICH shares. Open MPI's handles are pointers, so with Open MPI MPI.NET would crash at the first
    /// call; it is detected and refused here with a message instead.
    /// </summary>
    internal static unsafe class MpiLibrary
    {
        /// <summary>Set to a library file name or path to use another MPICH-compatible MPI.</summary>
        public const string OverrideVariable = "PIPPY_MPI_LIBRARY";

        /// <summary>The libraries tried in order when <see cref="OverrideVariable"/> is not set.</summary>
        internal static readonly string[] Candidates = { "libmpich.so.12", "libmpi.so.12" };
        private static readonly object Gate = new();
        private static IntPtr _handle;

        /// <summary>Loads MPICH and routes MPI.NET's imports to it; throws <see cref="MpiUnavailableException"/> with the fix.</summary>
        public static void Bind()
        {
            lock (Gate)
            {
                if (_handle != IntPtr.Zero) return;
                RefuseOpenMpiLauncher();
                _handle = Load();
                NativeLibrary.SetDllImportResolver(typeof(MPI.Environment).Assembly, Resolve);
            }
        }

        public static IntPtr Handle => _handle;

        private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
            name.StartsWith("msmpi", StringComparison.OrdinalIgnoreCase) ? _handle : IntPtr.Zero;

        private static void RefuseOpenMpiLauncher()
        {
            if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null)
                throw new MpiUnavailableException(
                    "This program was started by Open MPI's mpiexec, but Pippy runs on MPICH (MPI.NET cannot use Open MPI). " +
                    "Install MPICH (sudo apt-get install mpich) and start it with mpiexec.mpich -n <ranks> ...");
        }

        private static IntPtr Load()
        {
            string? chosen = Environment.GetEnvironmentVariable(OverrideVariable);
            var handles = new System.Collections.Generic.Dictionary<string, IntPtr>();
            string name = Choose(chosen is { Length: > 0 } ? new[] { chosen } : Candidates, overridden: chosen is { Length: > 0 }, candidate =>
            {
                if (!NativeLibrary.TryLoad(candidate, out IntPtr handle)) return null;
                handles[candidate] = handle;
                return LibraryVersion(handle);
            });
            return handles[name];
        }

        /// <summary>Open MPI's library, looked for when no MPICH is found, to say that only Open MPI is installed.</summary>
        internal const string OpenMpiLibrary = "libmpi.so.40";

        /// <summary>
        /// Which library to bind, apart from loading it (so the decision is tested without the libraries): tries
        /// <paramref name="names"/> in order, where <paramref name="probe"/> loads one and gives its
        /// MPI_Get_library_version text ("" when it has none), or null when it does not load. The first that loads is
        /// chosen unless it is Open MPI, which is refused; when none loads, the message says whether only Open MPI
        /// (<see cref="OpenMpiLibrary"/>) is installed. Throws <see cref="MpiUnavailableException"/> with the fix.
        /// </summary>
        internal static string Choose(System.Collections.Generic.IReadOnlyList<string> names, bool overridden, Func<string, string?> probe)
        {
            foreach (string candidate in names)
            {
                if (probe(candidate) is not { } version) continue;
                if (version.IndexOf("Open MPI", StringComparison.OrdinalIgnoreCase) >= 0)
                {
                    throw new MpiUnavailableException(
                        $"{candidate} is Open MPI ({FirstLine(version)}). MPI.NET, which Pippy uses, works with MPICH only and would crash with Open MPI. " +
                        $"Install MPICH (sudo apt-get install mpich) and {(overridden ? "unset " + OverrideVariable + " or point it at libmpich.so.12" : "start the program with mpiexec.mpich -n <ranks> ...")}.");
                }
                return candidate;
            }
            if (probe(OpenMpiLibrary) is not null)
            {
                throw new MpiUnavailableException(
                    $"Only Open MPI ({OpenMpiLibrary}) is installed. MPI.NET, which Pippy uses, works with MPICH only and would crash with Open MPI. " +
                    "Install MPICH: sudo apt-get install mpich, then start the program with mpiexec.mpich -n <ranks> ...");
            }
            throw new MpiUnavailableException(
                $"MPICH was not found ({string.Join(", ", names)}). " +
                $"Install it: sudo apt-get install mpich (or set {OverrideVariable} to the MPICH library).");
        }

        /// <summary>Loads <paramref name="name"/> and returns its MPI_Get_library_version text, or null when it does not load (for tests of the real loader).</summary>
        internal static string? Probe(string name) => NativeLibrary.TryLoad(name, out IntPtr handle) ? LibraryVersion(handle) : null;

        /// <summary>MPI_Get_library_version may be called before MPI_Init; it tells MPICH from Open MPI.</summary>
        private static string LibraryVersion(IntPtr handle)
        {
            if (!NativeLibrary.TryGetExport(handle, "MPI_Get_library_version", out IntPtr export)) return "";
            var getVersion = (delegate* unmanaged<byte*, int*, int>)export;
            byte* buffer = stackalloc byte[8192];
            int length = 0;
            return getVersion(buffer, &length) == 0 ? Encoding.ASCII.GetString(buffer, Math.Max(0, Math.Min(length, 8192))) : "";
        }

        /// <summary>MPI_TAG_UB of MPI_COMM_WORLD (MPI must be initialized); the standard's minimum, 32767, if it cannot be read.</summary>
        public static int TagUpperBound()
        {
            const int minimum = 32767;
            if (_handle == IntPtr.Zero || !NativeLibrary.TryGetExport(_handle, "MPI_Comm_get_attr", out IntPtr export)) return minimum;
            var getAttribute = (delegate* unmanaged<int, int, void*, int*, int>)export;
            int* value = null;
            int found = 0;
            if (getAttribute(MPI.Unsafe.MPI_COMM_WORLD, MPI.Unsafe.MPI_TAG_UB, &value, &found) != 0 || found == 0 || value == null) return minimum;
            return Math.Max(minimum, *value);
        }

        /// <summary>
        /// Whether the MPI library takes CUDA device pointers (MPICH's MPIX_Query_cuda_support, after MPI_Init); false
        /// when the library has no such query. Debian's MPICH 4.0 answers 0: it was built without CUDA.
        /// </summary>
        public static bool CudaAware()
        {
            if (_handle == IntPtr.Zero || !NativeLibrary.TryGetExport(_handle, "MPIX_Query_cuda_support", out IntPtr export)) return false;
            return ((delegate* unmanaged<int>)export)() != 0;
        }

        [DllImport("libc", EntryPoint = "setenv")]
        private static extern int SetEnv(string name, string value, int overwrite);

        /// <summary>Sets a variable in the C environment, which native libraries read (Environment.SetEnvironmentVariable does not reach it on Unix).</summary>
        public static void SetNativeEnvironment(string name, string value)
        {
            if (SetEnv(name, value, 1) != 0) throw new InvalidOperationException($"setenv {name} failed.");
        }

        private static string FirstLine(string text) => text.Split('\n')[0].Trim().TrimEnd('\0');
    }
}
