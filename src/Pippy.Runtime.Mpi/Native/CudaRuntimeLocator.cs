using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Pippy.Runtime.Native
{
    /// <summary>
    /// Finds the CUDA runtime library (libcudart) that the IPC path calls, at run time: the package that ships libtorch
    /// decides its version (TorchSharp-cuda: 12; PyTorch 2.11: 13), so no name is fixed at build time. The one libtorch
    /// has already loaded comes first (read from /proc/self/maps), so both use one runtime; then
    /// <see cref="Transport.CudaIpcMessages.CudaIpcRuntimeVariable"/>, the libraries beside libtorch_cuda (and where
    /// PyTorch's wheels keep them), and the plain sonames on the loader's path.
    /// </summary>
    internal static class CudaRuntimeLocator
    {
        /// <summary>The sonames tried on the loader's path, newest first.</summary>
        internal static readonly string[] Sonames = { "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so" };

        /// <summary>
        /// The candidates in the order tried (pure, for the tests): the override, then libcudart files mapped in this
        /// process, then the sonames in the folders of a mapped libtorch_cuda and PyTorch's nvidia folders beside it, then the sonames alone.
        /// </summary>
        internal static IReadOnlyList<string> Candidates(string? overridePath, IEnumerable<string> mappedFiles)
        {
            var result = new List<string>();
            if (!string.IsNullOrWhiteSpace(overridePath)) result.Add(overridePath.Trim());
            var mapped = mappedFiles.Distinct().ToArray();
            result.AddRange(mapped.Where(IsRuntime));
            foreach (string torch in mapped.Where(f => Path.GetFileName(f).StartsWith("libtorch_cuda.so", StringComparison.Ordinal)))
            {
                string folder = Path.GetDirectoryName(torch)!;
                // PyTorch's wheels: site-packages/torch/lib beside site-packages/nvidia/{cuda_runtime,cu13}/lib.
                string packages = Path.GetFullPath(Path.Combine(folder, "..", ".."));
                foreach (string dir in new[] { folder, Path.Combine(packages, "nvidia", "cuda_runtime", "lib"), Path.Combine(packages, "nvidia", "cu13", "lib") })
                    result.AddRange(Sonames.Select(name => Path.Combine(dir, name)));
            }
            result.AddRange(Sonames);
            return result.Distinct().ToArray();
        }

        /// <summary>
        /// libcudart.so.12, or the hashed copy that libtorch's own archives ship (libcudart-1a2b3c4d.so.12); not the static library.
        /// </summary>
        internal static bool IsRuntime(string path)
        {
            string name = Path.GetFileName(path);
            return (name.StartsWith("libcudart.so", StringComparison.Ordinal) || name.StartsWith("libcudart-", StringComparison.Ordinal)) && name.Contains(".so", StringComparison.Ordinal);
        }

        /// <summary>The first candidate that <paramref name="load"/> loads (it gives a handle, or zero), with its name; null when none does.</summary>
        internal static (string Name, IntPtr Handle)? Find(IEnumerable<string> candidates, Func<string, IntPtr> load)
        {
            foreach (string candidate in candidates)
            {
                IntPtr handle = load(candidate);
                if (handle != IntPtr.Zero) return (candidate, handle);
            }
            return null;
        }

        /// <summary>The files mapped into this process (the libraries loaded so far).</summary>
        internal static IEnumerable<string> MappedFiles()
        {
            if (!File.Exists("/proc/self/maps")) return Array.Empty<string>();
            return File.ReadLines("/proc/self/maps")
                .Select(line => line.IndexOf('/') is var at and >= 0 ? line[at..].Trim() : "")
                .Where(path => path.Length > 0)
                .ToArray();
        }

        /// <summary>This process's CUDA runtime, or null (call after libtorch has started CUDA, so that its own is mapped).</summary>
        public static (string Name, IntPtr Handle)? Locate() =>
            Find(Candidates(Environment.GetEnvironmentVariable(Transport.CudaIpcMessages.CudaIpcRuntimeVariable), MappedFiles()),
                name => System.Runtime.InteropServices.NativeLibrary.TryLoad(name, out IntPtr handle) ? handle : IntPtr.Zero);
    }
}
