using System;
using Pippy.Schedules;

namespace Pippy.Runtime.Execution
{
    /// <summary>The user's loss function threw (inside the last stage's forward action).</summary>
    internal sealed class LossFailedException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>A stage's own forward code threw; <see cref="Inputs"/> describes what it was given.</summary>
    internal sealed class StageForwardException(string inputs, Exception inner) : Exception(inner.Message, inner)
    {
        public string Inputs { get; } = inputs;
    }

    /// <summary>An action of the schedule failed: which rank, stage, action and microbatch, and the original exception.</summary>
    public sealed class PipelineActionException : Exception
    {
        internal PipelineActionException(int rank, PipelineAction action, Exception inner, string? part = null, string? inputs = null)
            : base(Compose(rank, action, inner, part, inputs), inner)
        {
            Rank = rank;
            Action = action;
        }

        /// <summary>The rank in its pipeline (the schedule's rank).</summary>
        public int Rank { get; }

        public PipelineAction Action { get; }

        private static string Compose(int rank, PipelineAction action, Exception inner, string? part, string? inputs)
        {
            // LibTorch's errors carry its C++ backtrace after the message; the inner exception keeps it.
            string message = inner.Message;
            int trace = message.IndexOf("\nException raised from ", StringComparison.Ordinal);
            if (trace >= 0) message = message.Substring(0, trace).TrimEnd();
            string what = part ?? $"{Describe(action.Kind)} of microbatch {action.Microbatch}";
            if (inputs is null) return $"Pipeline rank {rank}, stage {action.Stage}, action {action} ({what}) failed: {inner.GetType().Name}: {message}";
            return $"Pipeline rank {rank}, stage {action.Stage}, action {action} ({what}, given {inputs}) failed: {inner.GetType().Name}: {message}" +
                   (message.EndsWith('.') ? "" : ".") + " If an input is not what this stage's code takes, check the batch (shape, dtype, which dimension holds the batch) " +
                   "and that every rank built the same model.";
        }

        private static string Describe(ActionKind kind) => kind switch
        {
            ActionKind.Forward => "the forward",
            ActionKind.Backward => "the backward",
            ActionKind.BackwardInput => "the input gradients",
            ActionKind.BackwardWeight => "the weight gradients",
            ActionKind.SendForward => "sending the values",
            ActionKind.ReceiveForward => "receiving the values",
            ActionKind.SendBackward => "sending the gradients",
            _ => "receiving the gradients",
        };
    }
}
