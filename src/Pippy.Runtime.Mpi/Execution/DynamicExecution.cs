using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Pippy.Schedules;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// Dynamic execution (PIPPY_DYNAMIC=n, off by default): while this rank waits for a gradient that has not arrived,
    /// it runs the next forward of its table early if that forward's inputs are already here, keeping at most n more
    /// microbatches' activations per stage than the table's own peak (back-pressure). A forward run early computes the
    /// same values (each microbatch has its own graph; gradients are not touched), so losses and gradients are the
    /// table's; only dropout masks, drawn in the order forwards run, can differ. Stages fed by another stage of this
    /// rank (in memory) keep the table's order.
    /// </summary>
    internal sealed partial class ScheduleInterpreter
    {
        /// <summary>How many microbatches' activations a stage may hold beyond the table's peak; 0 turns dynamic execution off.</summary>
        internal static readonly int DynamicExtra = ReadDynamicExtra();

        private static bool Dynamic => DynamicExtra > 0;

        private Dictionary<int, int>? _inFlightBound;
        private readonly Dictionary<int, int> _inFlight = new();

        /// <summary>Forwards run out of the table's order (for the step's statistics).</summary>
        public int ForwardsRunEarly { get; private set; }

        private static int ReadDynamicExtra()
        {
            string? text = System.Environment.GetEnvironmentVariable("PIPPY_DYNAMIC");
            if (string.IsNullOrWhiteSpace(text)) return 0;
            return int.TryParse(text, out int extra) && extra >= 0
                ? extra
                : throw new ArgumentException($"PIPPY_DYNAMIC={text}: give how many microbatches' activations a stage may hold beyond the schedule's peak (0: off).");
        }

        /// <summary>Each stage's peak of forwards run and not yet backwarded in the table, plus the allowed extra.</summary>
        private static Dictionary<int, int> InFlightBound(IReadOnlyList<PipelineAction> actions)
        {
            var now = new Dictionary<int, int>();
            var peak = new Dictionary<int, int>();
            foreach (var a in actions)
            {
                int delta = a.Kind == ActionKind.Forward ? 1 : a.Kind is ActionKind.Backward or ActionKind.BackwardInput ? -1 : 0;
                if (delta == 0) continue;
                now[a.Stage] = now.GetValueOrDefault(a.Stage) + delta;
                peak[a.Stage] = Math.Max(peak.GetValueOrDefault(a.Stage), now[a.Stage]);
            }
            return peak.ToDictionary(p => p.Key, p => p.Value + DynamicExtra);
        }

        /// <summary>Runs one action of the table and counts its stage's activations in flight.</summary>
        private void RunAction(StageRun stage, PipelineAction action, int index)
        {
            Execute(stage, action, index);
            _done[index] = true;
            if (action.Kind == ActionKind.Forward) _inFlight[action.Stage] = _inFlight.GetValueOrDefault(action.Stage) + 1;
            else if (action.Kind is ActionKind.Backward or ActionKind.BackwardInput) _inFlight[action.Stage] = _inFlight.GetValueOrDefault(action.Stage) - 1;
        }

        /// <summary>
        /// Before the gradient receive at <paramref name="current"/>: while its messages have not all arrived, runs the
        /// table's next forward (with its receives and sends) if it is ready and within the bound, then looks again.
        /// </summary>
        private void RunReadyForwardsWhileWaiting(IReadOnlyList<PipelineAction> actions, int current, Stopwatch clock)
        {
            if (_posted[current] is not { } waiting) return;
            long t = ActionMeter.Now;
            bool arrived = _transport.TryFinish(waiting);
            Time.AddCommunication(t);
            while (!arrived)
            {
                int forward = NextForward(actions, current);
                if (forward < 0 || !Ready(actions, forward, out int first, out int last)) return;
                for (int k = first; k <= last; k++)
                {
                    double start = clock.Elapsed.TotalMilliseconds;
                    RunAction(_stages[actions[k].Stage], actions[k], k);
                    Timeline.Add(new TimedAction(_rank, actions[k], start, clock.Elapsed.TotalMilliseconds));
                }
                ForwardsRunEarly++;
                t = ActionMeter.Now;
                arrived = _transport.TryFinish(waiting);
                Time.AddCommunication(t);
            }
        }

        /// <summary>The table's first forward after <paramref name="current"/> not run yet, or -1.</summary>
        private int NextForward(IReadOnlyList<PipelineAction> actions, int current)
        {
            for (int k = current + 1; k < actions.Count; k++)
                if (actions[k].Kind == ActionKind.Forward && !_done[k]) return k;
            return -1;
        }

        /// <summary>
        /// Whether the forward at <paramref name="forward"/> may run now: its stage takes nothing from another stage of
        /// this rank, stays within its bound, and every message it receives has arrived (its receives are posted here
        /// if the table's lookahead has not reached them yet). Gives the span of its receives, itself and its sends.
        /// </summary>
        private bool Ready(IReadOnlyList<PipelineAction> actions, int forward, out int first, out int last)
        {
            var f = actions[forward];
            first = last = forward;
            var stage = _stages[f.Stage];
            if (stage.Incoming.Any(e => Local(e.FromStage))) return false;
            if (_inFlight.GetValueOrDefault(f.Stage) >= _inFlightBound![f.Stage]) return false;
            while (first > 0 && actions[first - 1] is { Kind: ActionKind.ReceiveForward } r && r.Stage == f.Stage && r.Microbatch == f.Microbatch && !_done[first - 1]) first--;
            while (last + 1 < actions.Count && actions[last + 1] is { Kind: ActionKind.SendForward } s && s.Stage == f.Stage && s.Microbatch == f.Microbatch) last++;
            for (int k = first; k < forward; k++)
            {
                var pending = _posted[k] ??= PostForward(stage, f.Microbatch);
                long t = ActionMeter.Now;
                bool arrived = _transport.TryFinish(pending);
                Time.AddCommunication(t);
                if (!arrived) return false;
            }
            return true;
        }
    }
}
