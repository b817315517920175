using System;
using System.Diagnostics;
using System.Linq;
using GpuCheck;
using Pippy.Runtime;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

// mpiexec -n 2 (or 4) dotnet GpuCheck.dll   (bench/gpu/run.sh): each rank on GPU rank % device count.
// 1. Transport: CUDA tensors from rank 0 to rank 1, as device pointers when MPI reports CUDA support and through pinned
//    host buffers (forced), values compared on the device; then through CUDA IPC (IpcCheck). 2. A 2-stage pipeline with
//    a weight tied across its ranks (on 4 ranks: 2 data-parallel pipelines) on the GPUs against the same model on one
//    GPU: loss and every gradient; the same for the GPT sample's model (GptCheck), over 3 steps. 3. Bandwidth of a 64
//    MiB device tensor between ranks 0 and 1 (host path, and CUDA IPC), against a device-to-device copy; the GPT's
//    step time through CUDA IPC against host staging.
using var mpi = PipelineEnvironment.Start(ref args);
// PIPPY_GPUCHECK_ON_CPU=1 runs the same checks on the CPU: a dry run of this program where no GPU is.
bool onCpu = Environment.GetEnvironmentVariable("PIPPY_GPUCHECK_ON_CPU") == "1";
if (!onCpu && !cuda.is_available())
{
    if (mpi.Rank == 0) Console.WriteLine("FAIL: CUDA is not available here (build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU).");
    return 2;
}
// With PIPPY_GPUCHECK_MOCK_IPC=1 as well, the dry run also runs the CUDA IPC checks, through the tests' mock of the
// CUDA runtime (tests/ParityApp/MockCudaIpc.cs: shared memory on the CPU), to check this program before a GPU run.
bool mockIpc = onCpu && Environment.GetEnvironmentVariable("PIPPY_GPUCHECK_MOCK_IPC") == "1";
if (mockIpc) CudaIpcPeers.Runtime = () => new ParityApp.MockCudaIpc();
bool ipcRuns = !onCpu || mockIpc;
var device = onCpu ? CPU : new Device(DeviceType.CUDA, mpi.Rank % cuda.device_count());
bool ok = true;
bool aware = Pippy.Runtime.Native.MpiLibrary.CudaAware();
if (mpi.Rank == 0) Console.WriteLine($"{(onCpu ? "dry run on the CPU" : $"{cuda.device_count()} GPU(s)")}; MPI reports CUDA support: {aware}");

// 1. Transport, both paths (ranks 0 and 1; the others wait).
foreach (bool forceHost in new[] { false, true })
{
    using var transport = new TensorTransport(MpiCommunicator.World(System.Threading.Timeout.InfiniteTimeSpan), learn: true, staging: new DeviceStaging(aware, forceHost));
    for (int round = 0; round < 2; round++) // the second round uses the learned, posted-ahead path
    {
        var expected = arange(1 << 20, dtype: ScalarType.Float32, device: device) * (round + 1);
        if (mpi.Rank == 0) { transport.Send(expected, 1, 10); transport.WaitForSends(); }
        else if (mpi.Rank == 1)
        {
            var received = transport.Receive(new[] { (0, 10) }, device)[0].Value!;
            bool same = received.device_type == device.type && received.equal(expected).all().item<bool>();
            Console.WriteLine($"transport ({(transport.Staging.Direct(device) ? "the tensor's own memory" : "pinned host buffers")}, round {round}): {(same ? "ok" : "MISMATCH")}");
            ok &= same;
            transport.Return(received);
        }
        mpi.Barrier();
    }
}

// 1b. Through CUDA IPC (not on the CPU: it maps device memory).
if (!ipcRuns) { if (mpi.Rank == 0) Console.WriteLine("transport (CUDA IPC): skipped (dry run on the CPU: CUDA IPC maps device memory; PIPPY_GPUCHECK_MOCK_IPC=1 runs it with a mock)"); }
else ok &= IpcCheck.Values(mpi, device);

// 2. Pipeline parity on the GPUs: a weight tied across the ranks, and data parallel when there are 4 ranks.
int replicas = mpi.Size / 2;
var model = GpuTied.Create(device, seed: 0);
using (var pipe = GpuTied.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false, DataParallel = replicas }))
{
    torch.manual_seed(1);
    var x = randn(32, 256).to(device); // drawn on the CPU: the same on every rank
    var y = randn(32, 256).to(device);
    var loss = pipe.Step(x, y, (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum));
    var reference = GpuTied.Create(device, seed: 0);
    var referenceLoss = nn.functional.mse_loss(reference.forward(x), y, nn.Reduction.Sum);
    referenceLoss.backward();
    // Every module's own parameters by full name: named_parameters() lists a tied weight once, under its first name.
    var referenceGradients = reference.named_modules()
        .SelectMany(m => m.module.named_parameters(recurse: false).Select(p => (Name: m.name.Length == 0 ? p.name : $"{m.name}.{p.name}", p.parameter)))
        .ToDictionary(p => p.Name, p => p.parameter.grad!);
    bool lossOk = Math.Abs(loss.item<float>() - referenceLoss.item<float>()) <= 1e-4 * Math.Abs(referenceLoss.item<float>());
    var mismatched = pipe.Stages.SelectMany(s => s.named_parameters())
        .Where(p => p.parameter.device_type != device.type || !p.parameter.grad!.allclose(referenceGradients[p.name], rtol: 1e-4, atol: 1e-5)).Select(p => p.name).ToArray();
    Console.WriteLine($"[rank {mpi.Rank}] pipeline on {device} ({replicas} data-parallel pipeline(s), a weight tied across ranks): loss {(lossOk ? "ok" : $"MISMATCH ({loss.item<float>()} against {referenceLoss.item<float>()})")}, " +
                      $"gradients {(mismatched.Length == 0 ? "ok" : "MISMATCH: " + string.Join(", ", mismatched))}");
    ok &= lossOk && mismatched.Length == 0;
}

// 3. Bandwidth of the send path for a 64 MiB device tensor, against a device-to-device copy.
using (var transport = new TensorTransport(MpiCommunicator.World(System.Threading.Timeout.InfiniteTimeSpan), learn: true, staging: new DeviceStaging(aware)))
{
    var data = randn(16L << 20, device: device);
    void Synchronize() { if (!onCpu) cuda.synchronize(); }
    double Best(Action run) { double best = double.MaxValue; for (int i = 0; i < 7; i++) { Synchronize(); var c = Stopwatch.StartNew(); run(); Synchronize(); best = Math.Min(best, c.Elapsed.TotalMilliseconds); } return best; }
    double send = Best(() =>
    {
        if (mpi.Rank == 0) { transport.Send(data, 1, 20); transport.WaitForSends(); transport.Receive(new[] { (1, 21) }); }
        else if (mpi.Rank == 1) { transport.Return(transport.Receive(new[] { (0, 20) }, device)[0].Value!); transport.Send(null, 0, 21); transport.WaitForSends(); }
    });
    var copy = empty_like(data);
    double memcpy = Best(() => copy.copy_(data));
    // What host staging cannot avoid: the tensor to pinned host memory and back to the device, without MPI between.
    var pinned = onCpu ? empty(data.shape, data.dtype) : empty(data.shape, data.dtype).pin_memory();
    double roundTrip = Best(() => { pinned.copy_(data); copy.copy_(pinned); });
    if (mpi.Rank == 0)
        Console.WriteLine($"64 MiB device to device between ranks: send {send:F2} ms ({(transport.Staging.Direct(device) ? "the tensor's own memory" : "pinned host buffers")}); " +
                          $"device copy {memcpy:F2} ms, send / copy bandwidth {memcpy / send:F2}; device to pinned host and back {roundTrip:F2} ms, send / that {roundTrip / send:F2}");
}

// 2b. The GPT sample's model over the ranks (4 stages: 2 or 4 ranks), 3 steps, each against one process.
if (mpi.Size is 2 or 4) ok &= GptCheck.Parity(mpi, device);
else if (mpi.Rank == 0) Console.WriteLine($"GPT parity: skipped ({mpi.Size} ranks; it runs on 2 or 4)");

// 3b. CUDA IPC bandwidth, and the GPT's step time through IPC against host staging.
if (!ipcRuns) { if (mpi.Rank == 0) Console.WriteLine("64 MiB through CUDA IPC: skipped (dry run on the CPU: CUDA IPC maps device memory; PIPPY_GPUCHECK_MOCK_IPC=1 runs it with a mock)"); }
else IpcCheck.Bandwidth(mpi, device);
if (mpi.Size is 2 or 4) GptCheck.StepTimes(mpi, device, onCpu, ipcRuns);

bool all = mpi.AllTrue(ok);
if (mpi.Rank == 0) Console.WriteLine(all ? "PASS gpu check" : "FAIL gpu check");
return all ? 0 : 1;
