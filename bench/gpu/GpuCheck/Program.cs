using System;
using System.Diagnostics;
using System.Linq;
using GpuCheck;
using Pippy.Runtime;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;
using MpiU = MPI.Unsafe;

// mpiexec -n 2 dotnet GpuCheck.dll   (bench/gpu/run.sh): each rank on its own GPU (cuda:rank % device count).
// 1. Transport: CUDA tensors from rank 0 to rank 1, as device pointers when MPI reports CUDA support and through pinned
//    host buffers (forced), values compared. 2. A 2-stage pipeline on the GPUs against the same model on one GPU:
//    outputs, loss and every gradient. 3. Bandwidth of a 64 MiB device tensor against a device-to-device copy.
using var mpi = PipelineEnvironment.Start(ref args);
if (!cuda.is_available())
{
    if (mpi.Rank == 0) Console.WriteLine("FAIL: CUDA is not available here (build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU).");
    return 2;
}
var device = new Device(DeviceType.CUDA, mpi.Rank % cuda.device_count());
bool ok = true;
bool aware = Pippy.Runtime.Native.MpiLibrary.CudaAware();
if (mpi.Rank == 0) Console.WriteLine($"{cuda.device_count()} GPU(s); MPI reports CUDA support: {aware}");

// 1. Transport, both paths.
foreach (bool forceHost in new[] { false, true })
{
    using var transport = new TensorTransport(MpiU.MPI_COMM_WORLD, learn: true, staging: new DeviceStaging(aware, forceHost));
    for (int round = 0; round < 2; round++) // the second round uses the learned, posted-ahead path
    {
        var expected = arange(1 << 20, dtype: ScalarType.Float32, device: device) * (round + 1);
        if (mpi.Rank == 0) { transport.Send(expected, 1, 10); transport.WaitForSends(); }
        else
        {
            var received = transport.Receive(new[] { (0, 10) })[0].Value!;
            bool same = received.device_type == DeviceType.CUDA && received.equal(expected).all().item<bool>();
            Console.WriteLine($"transport ({(forceHost || !aware ? "pinned host buffers" : "device pointers")}, round {round}): {(same ? "ok" : "MISMATCH")}");
            ok &= same;
            transport.Return(received);
        }
        mpi.Barrier();
    }
}

// 2. Pipeline parity on the GPUs.
torch.manual_seed(0);
var model = new GpuChain();
model.to(device);
using (var pipe = GpuChain.Pipeline.Build(model, mpi, new PipelineOptions { PrintPlan = false }))
{
    torch.manual_seed(1);
    var x = randn(32, 256).to(device);
    var y = randn(32, 256).to(device);
    var loss = pipe.Step(x, y, (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum));
    torch.manual_seed(0);
    var reference = new GpuChain();
    reference.to(device);
    var referenceLoss = nn.functional.mse_loss(reference.forward(x), y, nn.Reduction.Sum);
    referenceLoss.backward();
    var referenceGradients = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
    bool lossOk = Math.Abs(loss.item<float>() - referenceLoss.item<float>()) <= 1e-4 * Math.Abs(referenceLoss.item<float>());
    bool gradientsOk = pipe.Stages.SelectMany(s => s.named_parameters()).All(p => p.parameter.grad!.allclose(referenceGradients[p.name], rtol: 1e-4, atol: 1e-5));
    Console.WriteLine($"[rank {mpi.Rank}] pipeline on {device}: loss {(lossOk ? "ok" : "MISMATCH")}, gradients {(gradientsOk ? "ok" : "MISMATCH")}");
    ok &= lossOk && gradientsOk;
}

// 3. Bandwidth of the send path for a 64 MiB device tensor, against a device-to-device copy.
using (var transport = new TensorTransport(MpiU.MPI_COMM_WORLD, learn: true, staging: new DeviceStaging(aware)))
{
    var data = randn(16L << 20, device: device);
    double Best(Action run) { double best = double.MaxValue; for (int i = 0; i < 7; i++) { cuda.synchronize(); var c = Stopwatch.StartNew(); run(); cuda.synchronize(); best = Math.Min(best, c.Elapsed.TotalMilliseconds); } return best; }
    double send = Best(() =>
    {
        if (mpi.Rank == 0) { transport.Send(data, 1, 20); transport.WaitForSends(); transport.Receive(new[] { (1, 21) }); }
        else { transport.Return(transport.Receive(new[] { (0, 20) })[0].Value!); transport.Send(null, 0, 21); transport.WaitForSends(); }
    });
    var copy = empty_like(data);
    double memcpy = Best(() => copy.copy_(data));
    if (mpi.Rank == 0) Console.WriteLine($"64 MiB: send {send:F2} ms, device copy {memcpy:F2} ms, send / copy bandwidth {memcpy / send:F2} ({(aware ? "device pointers" : "pinned host buffers")})");
}

bool all = mpi.AllTrue(ok);
if (mpi.Rank == 0) Console.WriteLine(all ? "PASS gpu check" : "FAIL gpu check");
return all ? 0 : 1;
