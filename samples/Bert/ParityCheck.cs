using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Bert;

/// <summary>
/// --check-parity: the plain model, whole on every rank, takes the same steps as the pipeline (the same batches,
/// AdamW and clipping). After each Step, the loss and the gradient of every parameter this rank's stages hold must
/// match the plain model's within a relative tolerance; Report prints the largest differences and PASS or FAIL.
/// </summary>
public sealed class ParityCheck
{
    /// <summary>
    /// Relative tolerance, of each tensor's largest magnitude: the pipeline sums microbatch gradients, which reorders
    /// float additions against one full-batch backward.
    /// </summary>
    public const double Tolerance = 1e-4;

    private readonly PipelineEnvironment _mpi;
    private readonly PipelineRunner<Tensor> _pipe;
    private readonly CharBert _plain;
    private readonly IReadOnlyList<Parameter> _plainParameters;
    private readonly Dictionary<string, Parameter> _plainByName;
    private readonly OptimizerHelper _plainOptimizer;
    private readonly double _clipNorm;
    private double _lossDifference, _gradientDifference;
    private string _worstGradient = "";
    private int _comparedGradients, _mismatches;

    public ParityCheck(PipelineEnvironment mpi, PipelineRunner<Tensor> pipe, CharBert plain, double learningRate, double clipNorm)
    {
        _mpi = mpi;
        _pipe = pipe;
        _plain = plain;
        // The tied weight is one parameter under two names: step and clip it once, as PyTorch's parameters() would.
        _plainParameters = ParameterSet.Distinct(plain.parameters());
        // named_parameters lists the tied weight once; the stages name it under each of its modules.
        _plainByName = plain.named_modules()
            .SelectMany(m => m.module.named_parameters(recurse: false).Select(p => (name: m.name.Length == 0 ? p.name : $"{m.name}.{p.name}", p.parameter)))
            .ToDictionary(p => p.name, p => p.parameter);
        _plainOptimizer = optim.AdamW(_plainParameters, learningRate, weight_decay: 0.01);
        _clipNorm = clipNorm;
    }

    /// <summary>Runs the plain model on the step's batch and compares its loss and gradients with the pipeline's.</summary>
    public void CompareStep(int step, Tensor[] inputs, Tensor target, Func<Tensor, Tensor, Tensor> loss, Tensor pipelineLoss)
    {
        _plainOptimizer.zero_grad();
        var plainLoss = loss(_plain.forward(inputs[0], inputs[1]), target);
        plainLoss.backward();

        double lossDifference = Math.Abs(pipelineLoss.item<float>() - plainLoss.item<float>());
        _lossDifference = Math.Max(_lossDifference, lossDifference);
        if (lossDifference > Tolerance * Math.Abs(plainLoss.item<float>())) Mismatch($"step {step} loss: {pipelineLoss.item<float>()} against {plainLoss.item<float>()}");
        foreach (var (name, parameter) in _pipe.Stages.SelectMany(s => s.named_parameters()).DistinctBy(p => p.name))
        {
            var expected = _plainByName[name].grad!;
            double scale = Math.Max(expected.abs().max().item<float>(), 1e-12);
            double difference = (parameter.grad! - expected).abs().max().item<float>() / scale;
            _comparedGradients++;
            if (difference > _gradientDifference) (_gradientDifference, _worstGradient) = (difference, $"{name} at step {step}");
            if (difference > Tolerance) Mismatch($"step {step} grad {name}: max |diff| {difference:E2} of its largest magnitude");
        }
    }

    /// <summary>Clips and steps the plain model as the pipeline was.</summary>
    public void StepPlainModel()
    {
        nn.utils.clip_grad_norm_(_plainParameters, _clipNorm);
        _plainOptimizer.step();
    }

    /// <summary>Every rank's largest differences, then PASS or FAIL from rank 0; true when every rank passed.</summary>
    public bool Report()
    {
        bool passed = _mpi.AllTrue(_mismatches == 0);
        for (int rank = 0; rank < _mpi.Size; rank++)
        {
            if (rank == _mpi.Rank)
            {
                Console.WriteLine($"[rank {_mpi.Rank} stage {string.Join("+", _pipe.Stages.Select(s => s.Index))}] parity: {_comparedGradients} gradients compared, " +
                                  $"largest loss difference {_lossDifference:E2}, largest gradient difference {_gradientDifference:E2} of the tensor's largest magnitude ({_worstGradient})");
                Console.Out.Flush();
            }
            _mpi.Barrier();
        }
        double loss = Largest(_lossDifference), gradient = Largest(_gradientDifference);
        if (_mpi.Rank == 0)
            Console.WriteLine($"{(passed ? "PASS" : "FAIL")}: pipeline against the plain model in one process, every step: largest loss difference {loss:E2}, " +
                              $"largest gradient difference {gradient:E2} (relative tolerance {Tolerance:E0})");
        return passed;
    }

    /// <summary>The largest of every rank's value (each rank's value reaches all through a sum in which the others add 0).</summary>
    private double Largest(double value) => Enumerable.Range(0, _mpi.Size).Max(rank => _mpi.Sum(rank == _mpi.Rank ? value : 0));

    private void Mismatch(string what)
    {
        _mismatches++;
        Console.WriteLine($"[rank {_mpi.Rank}] MISMATCH {what}");
    }
}
