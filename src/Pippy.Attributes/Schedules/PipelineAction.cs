using System;
using System.Globalization;

namespace Pippy.Schedules
{
    /// <summary>What a rank does in one slot of a schedule.</summary>
    public enum ActionKind
    {
        /// <summary>Forward of one microbatch through one stage (<c>F</c>).</summary>
        Forward,
        /// <summary>Full backward (input and weight gradients) of one microbatch through one stage (<c>B</c>).</summary>
        Backward,
        /// <summary>The input-gradient half of a backward (<c>I</c>): what the previous stage waits for.</summary>
        BackwardInput,
        /// <summary>The weight-gradient half of a backward (<c>W</c>): nobody waits for it, so it can fill bubbles.</summary>
        BackwardWeight,
        /// <summary>Send a stage's forward outputs of one microbatch to the stages that read them (<c>SEND_F</c>).</summary>
        SendForward,
        /// <summary>Receive a stage's forward inputs of one microbatch from the stages that make them (<c>RECV_F</c>).</summary>
        ReceiveForward,
        /// <summary>Send the gradients of a stage's inputs back to the stages that made them (<c>SEND_B</c>).</summary>
        SendBackward,
        /// <summary>Receive the gradients of a stage's outputs from the stages that read them (<c>RECV_B</c>).</summary>
        ReceiveBackward,
    }

    /// <summary>
    /// One action of a schedule, written as torch.distributed.pipelining writes it: stage, kind, microbatch,
    /// e.g. <c>2F0</c> (stage 2, forward, microbatch 0) or <c>1SEND_B3</c>.
    /// </summary>
    public readonly struct PipelineAction : IEquatable<PipelineAction>
    {
        public PipelineAction(int stage, ActionKind kind, int microbatch)
        {
            Stage = stage;
            Kind = kind;
            Microbatch = microbatch;
        }

        public int Stage { get; }
        public ActionKind Kind { get; }
        public int Microbatch { get; }

        public bool IsCompute => Kind == ActionKind.Forward || Kind == ActionKind.Backward || Kind == ActionKind.BackwardInput || Kind == ActionKind.BackwardWeight;
        public bool IsForwardPass => Kind == ActionKind.Forward || Kind == ActionKind.SendForward || Kind == ActionKind.ReceiveForward;

        public static string KindCode(ActionKind kind) => kind switch
        {
            ActionKind.Forward => "F",
            ActionKind.Backward => "B",
            ActionKind.BackwardInput => "I",
            ActionKind.BackwardWeight => "W",
            ActionKind.SendForward => "SEND_F",
            ActionKind.ReceiveForward => "RECV_F",
            ActionKind.SendBackward => "SEND_B",
            ActionKind.ReceiveBackward => "RECV_B",
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };

        // Longest codes first so that "SEND_F" is not read as an "F".
        private static readonly ActionKind[] ParseOrder =
        {
            ActionKind.SendForward, ActionKind.ReceiveForward, ActionKind.SendBackward, ActionKind.ReceiveBackward,
            ActionKind.Forward, ActionKind.Backward, ActionKind.BackwardInput, ActionKind.BackwardWeight,
        };

        /// <summary>Reads the torch.distributed.pipelining form (<c>2F0</c>, <c>0SEND_F1</c>).</summary>
        public static bool TryParse(string text, out PipelineAction action)
        {
            action = default;
            text = text.Trim();
            int i = 0;
            while (i < text.Length && char.IsDigit(text[i])) i++;
            if (i == 0 || !int.TryParse(text.Substring(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out int stage))
                return false;
            foreach (var kind in ParseOrder)
            {
                string code = KindCode(kind);
                if (string.CompareOrdinal(text, i, code, 0, code.Length) != 0) continue;
                string rest = text.Substring(i + code.Length);
                if (rest.Length == 0 || !int.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out int microbatch))
                    return false;
                action = new PipelineAction(stage, kind, microbatch);
                return true;
            }
            return false;
        }

        public static PipelineAction Parse(string text) =>
            TryParse(text, out var action)
                ? action
                : throw new FormatException($"'{text}' is not a pipeline action; expected stage, kind, microbatch such as 2F0 or 1SEND_B3.");

        public override string ToString() =>
            Stage.ToString(CultureInfo.InvariantCulture) + KindCode(Kind) + Microbatch.ToString(CultureInfo.InvariantCulture);

        public bool Equals(PipelineAction other) => Stage == other.Stage && Kind == other.Kind && Microbatch == other.Microbatch;
        public override bool Equals(object? obj) => obj is PipelineAction other && Equals(other);
        public override int GetHashCode() => (Stage * 397 ^ (int)Kind) * 397 ^ Microbatch;
        public static bool operator ==(PipelineAction left, PipelineAction right) => left.Equals(right);
        public static bool operator !=(PipelineAction left, PipelineAction right) => !left.Equals(right);
    }
}
