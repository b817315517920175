using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace GpuCheck;

/// <summary>
/// A pipeline's gradients against the same model's in one process, by full name. Tolerances (written down in
/// bench/gpu/README.md): the loss within 1e-4 relative, every gradient allclose with rtol 1e-4 and atol 1e-5, float32
/// on the GPU, where the pipeline's microbatches and the one-process batch take different kernels and summation orders.
/// </summary>
public static class GpuParity
{
    public const double LossRtol = 1e-4, GradientRtol = 1e-4, GradientAtol = 1e-5;

    /// <summary>Every module's own parameters' gradients by full name: named_parameters() lists a tied weight once, under its first name.</summary>
    public static Dictionary<string, Tensor> Gradients(nn.Module reference) => reference.named_modules()
        .SelectMany(m => m.module.named_parameters(recurse: false).Select(p => (Name: m.name.Length == 0 ? p.name : $"{m.name}.{p.name}", p.parameter)))
        .ToDictionary(p => p.Name, p => p.parameter.grad!);

    public static bool LossMatches(double loss, double reference) => Math.Abs(loss - reference) <= LossRtol * Math.Abs(reference);

    /// <summary>The names of this rank's parameters whose gradient is missing, off the device, or not close to the reference's.</summary>
    public static string[] Mismatched(PipelineRunner pipe, Dictionary<string, Tensor> reference, Device device) => pipe.Stages
        .SelectMany(s => s.named_parameters())
        .Where(p => p.parameter.device_type != device.type || p.parameter.grad is null
                    || !p.parameter.grad.allclose(reference[p.name], rtol: GradientRtol, atol: GradientAtol))
        .Select(p => p.name).ToArray();
}
