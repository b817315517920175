using System;
using System.Collections.Generic;
using System.Linq;
using Pippy.Runtime.Communication;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime
{
    /// <summary>
    /// How the loss of a low-precision model is scaled so that small gradients do not vanish in fp16 (dynamic loss
    /// scaling): the loss is multiplied by the scale before the backward; a step whose gradients hold an inf or NaN on
    /// any rank is skipped on every rank and the scale multiplied by <paramref name="Backoff"/>; after
    /// <paramref name="GrowthInterval"/> good steps in a row it is multiplied by <paramref name="Growth"/>.
    /// </summary>
    public sealed record LossScaling(double Initial = 65536, double Growth = 2, double Backoff = 0.5, int GrowthInterval = 2000, double Minimum = 1)
    {
        /// <summary>No scaling (bf16, whose range is float32's); a step with an inf or NaN is still skipped everywhere.</summary>
        public static LossScaling None { get; } = new(1, 1, 1, int.MaxValue, 1);

        /// <summary>Dynamic scaling for fp16 with the usual settings (start at 2^16, halve on overflow, double after 2000 good steps).</summary>
        public static LossScaling Dynamic { get; } = new();

        /// <summary>Throws when these settings cannot work, naming what they need.</summary>
        internal void Check()
        {
            if (Initial <= 0 || Backoff <= 0 || Growth < 1 || GrowthInterval < 1 || Minimum <= 0)
                throw new ArgumentException($"{this}: the scales must be positive, the growth at least 1 and the interval at least 1 step.");
        }
    }

    /// <summary>
    /// Mixed-precision training of a pipeline whose stages run in bf16 or fp16 (the model converted with
    /// <c>model.to(ScalarType.BFloat16)</c> before Build, its messages then half the bytes): the optimizer updates float32
    /// master copies of this rank's parameters, in the manner of Megatron's Float16Module, and each update is rounded
    /// once into the model. Use it as:
    /// <code>
    /// var mixed = new MixedPrecision&lt;Tensor&gt;(pipe, LossScaling.Dynamic);
    /// var optimizer = optim.AdamW(mixed.MasterParameters, 1e-3);
    /// optimizer.zero_grad();
    /// var loss = mixed.Step(inputs, target, lossFunction); // the unscaled loss
    /// if (mixed.Unscale()) { mixed.ClipGradNorm(1.0); optimizer.step(); mixed.CopyToModel(); }
    /// </code>
    /// <see cref="Unscale"/> is collective (every rank of the job calls it): it checks every rank's gradients, and either
    /// all ranks step or none does. Data-parallel and tied-weight gradient sums are formed in float32 by the runtime.
    /// </summary>
    public sealed class MixedPrecision<TOutput>
    {
        private readonly PipelineRunner<TOutput> _pipe;
        private readonly IReadOnlyList<Parameter> _model;
        private readonly Parameter[] _masters;
        private readonly bool[] _counted;
        private int _goodSteps;
        private double _scaleOfStep = 1;

        public MixedPrecision(PipelineRunner<TOutput> pipe, LossScaling? scaling = null)
        {
            _pipe = pipe ?? throw new ArgumentNullException(nameof(pipe));
            Scaling = scaling ?? LossScaling.None;
            Scaling.Check();
            Scale = Scaling.Initial;
            _model = pipe.Parameters();
            _counted = pipe.CountedInNorm();
            using (no_grad())
                _masters = _model.Select(p => new Parameter(p.detach().to_type(ScalarType.Float32).clone().DetachFromDisposeScope(), requires_grad: true)).ToArray();
        }

        public LossScaling Scaling { get; }

        /// <summary>The loss scale of the next step.</summary>
        public double Scale { get; private set; }

        /// <summary>Steps skipped because some rank's gradients held an inf or NaN.</summary>
        public int SkippedSteps { get; private set; }

        /// <summary>Float32 copies of <see cref="PipelineRunner.Parameters"/>, in the same order: give these to the optimizer.</summary>
        public IReadOnlyList<Parameter> MasterParameters => _masters;

        /// <summary>
        /// <c>Step</c> with the loss multiplied by <see cref="Scale"/>; returns the batch's loss unscaled. The gradients
        /// accumulate in the model's parameters (several Steps, NoSync included, before one <see cref="Unscale"/>).
        /// </summary>
        public Tensor Step(Tensor[] inputs, Tensor target, Func<TOutput, Tensor, Tensor> loss)
        {
            if (loss is null) throw new ArgumentNullException(nameof(loss));
            double scale = _scaleOfStep = Scale;
            var scaled = _pipe.Step(inputs, target, scale == 1 ? loss : (output, t) => loss(output, t) * scale);
            return scale == 1 ? scaled : scaled / scale;
        }

        /// <summary>One input; see <see cref="Step(Tensor[], Tensor, Func{TOutput, Tensor, Tensor})"/>.</summary>
        public Tensor Step(Tensor input, Tensor target, Func<TOutput, Tensor, Tensor> loss) => Step(new[] { input }, target, loss);

        /// <summary>
        /// Collective. When every gradient on every rank is finite: each master's gradient becomes the model's, in
        /// float32, divided by the step's scale, the model's gradients are zeroed for the next Steps, and it returns
        /// true (then clip, step the optimizer and <see cref="CopyToModel"/>). Otherwise the step is skipped on every
        /// rank: the model's gradients are zeroed, the scale lowered, and it returns false.
        /// </summary>
        public bool Unscale()
        {
            bool finite;
            using (var scope = NewDisposeScope())
                finite = _model.All(p => p.grad is not { } grad || isfinite(grad).all().item<bool>());
            bool everywhere = _pipe.World.Allreduce(finite ? 1 : 0, ReduceOperation.LogicalAnd, "the check of every rank's gradients for inf and NaN (MixedPrecision.Unscale)") != 0;
            using (no_grad())
            {
                if (everywhere)
                    for (int i = 0; i < _model.Count; i++)
                    {
                        if (_model[i].grad is not { } grad) { _masters[i].grad = null; continue; }
                        var unscaled = grad.to_type(ScalarType.Float32);
                        if (_scaleOfStep != 1) unscaled = unscaled.div_(_scaleOfStep);
                        if (_masters[i].grad is { } master) master.copy_(unscaled);
                        else _masters[i].grad = unscaled.DetachFromDisposeScope();
                    }
                foreach (var p in _model) p.grad?.zero_();
            }
            if (!everywhere)
            {
                SkippedSteps++;
                _goodSteps = 0;
                Scale = Math.Max(Scaling.Minimum, Scale * Scaling.Backoff);
                return false;
            }
            if (++_goodSteps >= Scaling.GrowthInterval)
            {
                _goodSteps = 0;
                Scale *= Scaling.Growth;
            }
            return true;
        }

        /// <summary>
        /// Shards the optimizer's state across the data-parallel replicas (ZeRO-1), as <see cref="PipelineRunner.ShardOptimizerState"/>
        /// does for the model's parameters: give the returned share of <see cref="MasterParameters"/> to the optimizer, and
        /// after its step call <see cref="OptimizerShard.Gather"/> (every replica's updated masters into every replica) and
        /// then <see cref="CopyToModel"/>. Every replica keeps every master; the optimizer's moments are what is divided.
        /// </summary>
        public OptimizerShard ShardOptimizerState() => _pipe.ShardOver(_masters);

        /// <summary>Global clipping of the masters' gradients (the pipeline-wide norm, a replicated parameter counted once); returns the norm.</summary>
        public double ClipGradNorm(double maxNorm) => _pipe.ClipGradNorm(_masters, _counted, maxNorm);

        /// <summary>After the optimizer's step: the masters' values rounded into the model's parameters.</summary>
        public void CopyToModel()
        {
            using var noGrad = no_grad();
            for (int i = 0; i < _model.Count; i++) _model[i].copy_(_masters[i]);
        }
    }
}
