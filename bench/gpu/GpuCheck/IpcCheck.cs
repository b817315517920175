using System;
using System.Diagnostics;
using System.Linq;
using Pippy.Runtime;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Native;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

namespace GpuCheck;

/// <summary>
/// The CUDA IPC path alone, between ranks 0 and 1 (the others take part in the collectives only): values of every
/// round equal on rank 1's GPU (round 0 learns through host staging, the next go device to device into rank 1's
/// buffer), then the bandwidth of 64 MiB messages rank to rank against a device-to-device copy in one process.
/// </summary>
public static class IpcCheck
{
    /// <summary>The transport over CUDA IPC forced (PIPPY_GPU_TRANSPORT=ipc), or null with the reason printed (on rank 0).</summary>
    private static TensorTransport? Open(PipelineEnvironment mpi, Device device)
    {
        // A minute: a hang becomes the watchdog's message naming what was waited for, within the run's time.
        var world = MpiCommunicator.World(TimeSpan.FromMinutes(1));
        var peers = CudaIpcPeers.Discover(world, device, MpiLibrary.CudaAware(), "ipc", CudaIpcPeers.Runtime);
        bool usable = mpi.AllTrue(peers.Mistake is null && peers.Cuda is not null);
        if (mpi.Rank == 0) Console.WriteLine(usable ? peers.Describe(0) : $"FAIL CUDA IPC between the ranks: {peers.Mistake?.Message ?? "no CUDA runtime"}");
        if (!usable) return null;
        return new TensorTransport(world, learn: true, staging: new DeviceStaging(MpiLibrary.CudaAware()), cudaIpc: new CudaIpcChannel(peers.Cuda!, world, peers.IpcPeers));
    }

    /// <summary>Waits for the device (nothing to wait for in the dry run on the CPU, with the mocked runtime).</summary>
    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }

    public static bool Values(PipelineEnvironment mpi, Device device)
    {
        using var transport = Open(mpi, device);
        if (transport is null) return false;
        bool ok = true;
        for (int round = 0; round < 5; round++)
        {
            // Shapes of 3 messages; from round 3 on the first one's is another (a new buffer, learned again through the
            // host in round 3, device to device in round 4).
            var shapes = new[] { new long[] { round >= 3 ? 3000 : 1 << 20 }, new long[] { 64, 128 }, new long[] { 7 } };
            var expected = shapes.Select((s, k) => (arange(s.Aggregate(1L, (a, b) => a * b), dtype: ScalarType.Float32, device: device) * (round + 1) + k).reshape(s)).ToArray();
            if (round == 3) transport.Forget(0);
            if (mpi.Rank == 0)
            {
                for (int k = 0; k < expected.Length; k++) transport.Send(expected[k], 1, 10 + k);
                transport.WaitForSends();
            }
            else if (mpi.Rank == 1)
            {
                var received = transport.Receive(Enumerable.Range(0, expected.Length).Select(k => (0, 10 + k)).ToArray(), device);
                bool same = received.Select((r, k) => r.Value is { } v && v.device_type == device.type && v.equal(expected[k]).all().item<bool>()).All(s => s);
                var counts = transport.IpcHandleCounts;
                Console.WriteLine($"transport (CUDA IPC, round {round}): {(same ? "ok" : "MISMATCH")}; buffers exported {counts.Exported}, freed {counts.Freed}");
                ok &= same;
                foreach (var r in received) transport.Return(r.Value!);
            }
            mpi.Barrier();
        }
        if (mpi.Rank == 0)
        {
            var (_, opened, closed, _) = transport.IpcHandleCounts;
            bool cached = opened == 4 && closed == 1;
            Console.WriteLine($"CUDA IPC handles on the sender: opened {opened}, closed {closed} (3 messages, one new shape): {(cached ? "ok" : "MISMATCH")}; {transport.PathCounts.ViaCudaIpc} messages via IPC");
            ok &= cached;
        }
        return mpi.AllTrue(ok);
    }

    /// <summary>
    /// 32 messages of 64 MiB from rank 0 to rank 1 back to back (then one empty reply: its latency is spread over 2 GiB),
    /// against 32 device-to-device copies in one process: the bandwidth ratio, whose goal is at least 0.8. Best of 7,
    /// after 2 rounds that learn the shapes. The dry run's mock sends 4 (its "device" memory is the host's).
    /// </summary>
    public static void Bandwidth(PipelineEnvironment mpi, Device device)
    {
        using var transport = Open(mpi, device);
        if (transport is null) return;
        int messages = device.type == DeviceType.CUDA ? 32 : 4;
        var data = randn(16L << 20, device: device);
        double round = double.MaxValue;
        for (int trial = 0; trial < 9; trial++)
        {
            Synchronize(device);
            mpi.Barrier();
            var clock = Stopwatch.StartNew();
            if (mpi.Rank == 0)
            {
                for (int k = 0; k < messages; k++) transport.Send(data, 1, 100 + k);
                transport.WaitForSends();
                transport.Receive(new[] { (1, 99) });
            }
            else if (mpi.Rank == 1)
            {
                var received = transport.Receive(Enumerable.Range(0, messages).Select(k => (0, 100 + k)).ToArray(), device);
                Synchronize(device); // the copies have landed: this rank's stream waited for them
                if (trial == 2 && !received.All(r => r.Value!.equal(data).all().item<bool>())) Console.WriteLine("MISMATCH: 64 MiB through CUDA IPC");
                foreach (var r in received) transport.Return(r.Value!);
                transport.Send(null, 0, 99);
                transport.WaitForSends();
            }
            if (trial >= 2) round = Math.Min(round, clock.Elapsed.TotalMilliseconds);
        }
        var copy = empty_like(data);
        double local = double.MaxValue;
        for (int trial = 0; trial < 7; trial++)
        {
            Synchronize(device);
            var clock = Stopwatch.StartNew();
            for (int k = 0; k < messages; k++) copy.copy_(data);
            Synchronize(device);
            local = Math.Min(local, clock.Elapsed.TotalMilliseconds);
        }
        if (mpi.Rank == 0)
        {
            double ratio = local / round;
            Console.WriteLine($"64 MiB through CUDA IPC between ranks ({messages} back to back): {round / messages:F3} ms a message ({64.0 / 1024 / (round / messages / 1000):F0} GiB/s); " +
                              $"device copy in one process {local / messages:F3} ms; IPC / copy bandwidth {ratio:F2} (goal 0.8: {(ratio >= 0.8 ? "met" : "NOT met")})");
        }
    }
}
