using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Pippy.Runtime.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Materialization
{
    /// <summary>
    /// A tensor given memory by <see cref="MetaTensors.Materialize"/>: its full name in the model (the first, when a
    /// tied weight has several), the module that holds it under that name, and the new, uninitialized tensor.
    /// </summary>
    public sealed record MaterializedTensor(string Name, nn.Module Owner, string LocalName, Tensor Tensor, bool IsBuffer)
    {
        /// <summary>Every name under which the model holds this tensor (a tied weight has several).</summary>
        public IReadOnlyList<string> Names { get; init; } = new[] { Name };
    }

    /// <summary>
    /// Finds the parameters and buffers of module trees that live on the meta device (shapes and dtypes only, no
    /// memory) and replaces each with an uninitialized tensor of the same shape and dtype on a real device, in the
    /// module that holds it. A tensor held by several modules (tied weights) gets one new tensor, so ties survive.
    /// </summary>
    internal static class MetaTensors
    {
        private sealed record Slot(string Name, nn.Module Owner, string LocalName, bool IsBuffer, Tensor Meta, IntPtr Identity);

        /// <summary>True when any parameter or buffer under <paramref name="module"/> is on the meta device.</summary>
        public static bool Any(nn.Module module) =>
            module.parameters().Any(p => p.is_meta) || module.buffers().Any(b => b.is_meta);

        /// <summary>
        /// Gives memory on <paramref name="device"/> to every meta tensor of the roots (each root's names start with
        /// its prefix), and returns them in the order the model lists them, each tensor once.
        /// </summary>
        public static IReadOnlyList<MaterializedTensor> Materialize(IEnumerable<(string Prefix, nn.Module Root)> roots, Device device)
        {
            // Identities are read before anything is replaced: replacing disposes the old wrappers.
            var slots = Find(roots);
            var result = new List<MaterializedTensor>();
            foreach (var group in slots.GroupBy(s => s.Identity))
            {
                var first = group.First();
                Tensor fresh = first.IsBuffer
                    ? empty(first.Meta.shape, first.Meta.dtype, device)
                    : new Parameter(empty(first.Meta.shape, first.Meta.dtype, device), first.Meta.requires_grad);
                foreach (var slot in group) Replace(slot, fresh);
                result.Add(new MaterializedTensor(first.Name, first.Owner, first.LocalName, fresh, first.IsBuffer) { Names = group.Select(s => s.Name).ToArray() });
            }
            return result;
        }

        private static List<Slot> Find(IEnumerable<(string Prefix, nn.Module Root)> roots)
        {
            var slots = new List<Slot>();
            var seen = new HashSet<(nn.Module, string)>();
            foreach (var (prefix, root) in roots)
            {
                foreach (var (path, module) in new[] { ("", root) }.Concat(root.named_modules()))
                {
                    string owner = Join(prefix, path);
                    foreach (var (name, parameter) in module.named_parameters(recurse: false))
                        if (parameter.is_meta && seen.Add((module, name)))
                            slots.Add(new Slot(Join(owner, name), module, name, IsBuffer: false, parameter, TorchNative.Identity(parameter)));
                    foreach (var (name, buffer) in module.named_buffers(recurse: false))
                        if (buffer.is_meta && seen.Add((module, name)))
                            slots.Add(new Slot(Join(owner, name), module, name, IsBuffer: true, buffer, TorchNative.Identity(buffer)));
                }
            }
            return slots;
        }

        private static string Join(string a, string b) => a.Length == 0 ? b : b.Length == 0 ? a : a + "." + b;

        /// <summary>
        /// Puts <paramref name="fresh"/> where the slot's meta tensor was: through the module's own property when it
        /// has one (TorchSharp's layers keep their weights in fields behind properties, some in native code), else
        /// in the module's registry and the field of that component name (user modules after RegisterComponents).
        /// </summary>
        private static void Replace(Slot slot, Tensor fresh)
        {
            var type = slot.Owner.GetType();
            var property = type.GetProperty(slot.LocalName, BindingFlags.Public | BindingFlags.Instance);
            if (property is { CanWrite: true } && property.PropertyType.IsInstanceOfType(fresh))
            {
                property.SetValue(slot.Owner, fresh);
            }
            else
            {
                var register = slot.IsBuffer
                    ? typeof(nn.Module).GetMethod("ConditionallyRegisterBuffer", BindingFlags.NonPublic | BindingFlags.Instance, new[] { typeof(string), typeof(Tensor), typeof(bool) })
                    : typeof(nn.Module).GetMethod("ConditionallyRegisterParameter", BindingFlags.NonPublic | BindingFlags.Instance, new[] { typeof(string), typeof(Parameter) });
                if (register is null)
                    throw new InvalidOperationException($"This TorchSharp version has no {(slot.IsBuffer ? "ConditionallyRegisterBuffer" : "ConditionallyRegisterParameter")}: '{slot.Name}' cannot be given memory.");
                bool persistent = !slot.IsBuffer || slot.Owner.state_dict().ContainsKey(slot.LocalName);
                register.Invoke(slot.Owner, slot.IsBuffer ? new object[] { slot.LocalName, fresh, persistent } : new object[] { slot.LocalName, fresh });
                if (FieldOf(type, slot.LocalName) is { } field && field.FieldType.IsInstanceOfType(fresh)) field.SetValue(slot.Owner, fresh);
            }

            var now = slot.IsBuffer
                ? slot.Owner.named_buffers(recurse: false).FirstOrDefault(b => b.name == slot.LocalName).buffer
                : slot.Owner.named_parameters(recurse: false).FirstOrDefault(p => p.name == slot.LocalName).parameter;
            if (now is null || now.is_meta)
                throw new InvalidOperationException(
                    $"'{slot.Name}' of {type.Name} could not be given memory: the module keeps it where it cannot be replaced (TorchSharp modules " +
                    "implemented in native code, such as MultiheadAttention and the recurrent layers, have no setter for it). Create that module " +
                    "with an explicit device (device: torch.CPU) inside LazyModel.Construct, so it is built with memory from the start.");
        }

        private static FieldInfo? FieldOf(Type? type, string component)
        {
            for (; type is not null && type != typeof(nn.Module); type = type.BaseType)
            {
                foreach (var field in type.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                    if (field.ComponentName() == component) return field;
            }
            return null;
        }
    }
}
