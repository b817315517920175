using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using static TorchSharp.torch;

namespace Pippy.Runtime.Execution
{
    /// <summary>
    /// A step's arguments of the model's forward, in forward's order, divided into what is divided into microbatches
    /// and sent (the tensors) and what every stage reads as it is (the plain arguments: flags, numbers, strings, enums).
    /// </summary>
    internal sealed class ForwardArguments
    {
        private ForwardArguments(Tensor[] tensors, object?[] values)
        {
            Tensors = tensors;
            Values = values;
        }

        /// <summary>forward's tensors by position; null at a plain argument's position and for an optional tensor not given.</summary>
        public Tensor[] Tensors { get; }

        /// <summary>forward's plain arguments by position (null at the tensors' positions): what the stages read.</summary>
        public object?[] Values { get; }

        /// <summary>For a model whose forward takes tensors only: checks that it does.</summary>
        public static ForwardArguments OfTensors(StageGraph graph, Tensor[] inputs)
        {
            if (graph.Arguments.Count > 0 && inputs is not null)
                throw new ArgumentException(
                    $"{graph.ModelName}.forward also takes {Describe(graph.Arguments)}, which are not tensors: give all of forward's arguments in order as an object[] " +
                    $"(new object[] {{ {string.Join(", ", graph.ModelInputs)} }}).", nameof(inputs));
            return new ForwardArguments(inputs!, new object?[inputs?.Length ?? 0]);
        }

        /// <summary>
        /// Separates forward's arguments, given in forward's order: each plain argument must have its parameter's type
        /// (a number converts to another numeric type when its value stays the same), each other one be a tensor or null.
        /// </summary>
        public static ForwardArguments Of(StageGraph graph, object?[] arguments)
        {
            if (arguments is null) throw new ArgumentNullException(nameof(arguments));
            if (arguments.Length != graph.ModelInputs.Count)
                throw new ArgumentException(
                    $"{graph.ModelName}.forward takes {graph.ModelInputs.Count} argument(s) ({string.Join(", ", graph.ModelInputs)}) but {arguments.Length} were given.",
                    nameof(arguments));
            var tensors = new Tensor[arguments.Length];
            var values = new object?[arguments.Length];
            var plain = graph.Arguments.ToDictionary(a => a.Position);
            for (int i = 0; i < arguments.Length; i++)
            {
                if (plain.TryGetValue(i, out var parameter))
                {
                    values[i] = Convert(graph, parameter, arguments[i]);
                    continue;
                }
                tensors[i] = arguments[i] switch
                {
                    null => null!,
                    Tensor t => t,
                    var other => throw new ArgumentException(
                        $"{graph.ModelName}.forward's argument '{graph.ModelInputs[i]}' is a tensor, but {Show(other)} was given.", nameof(arguments)),
                };
            }
            return new ForwardArguments(tensors, values);
        }

        /// <summary>
        /// A number standing for the plain arguments, alike on every rank that was given equal ones (from their invariant
        /// text; string.GetHashCode differs between processes), below 2^20 so that sums of it and of its square over
        /// thousands of ranks stay exact in a double.
        /// </summary>
        public double AgreementKey()
        {
            ulong hash = 14695981039346656037UL; // FNV-1a
            foreach (var value in Values)
            {
                string text = value is null ? "\u0000null" : $"{value.GetType().FullName}:{System.Convert.ToString(value, CultureInfo.InvariantCulture)}";
                foreach (char c in text + "\u0001")
                {
                    hash ^= c;
                    hash *= 1099511628211UL;
                }
            }
            return (hash ^ (hash >> 20) ^ (hash >> 40)) & 0xFFFFF;
        }

        /// <summary>The arguments as the error a disagreement gives names them.</summary>
        public string Show(StageGraph graph) =>
            string.Join(", ", graph.Arguments.Select(a => $"{a.Name} = {Show(Values[a.Position])}"));

        private static object? Convert(StageGraph graph, ModelArgument parameter, object? value)
        {
            var type = parameter.Type;
            if (value is null)
            {
                if (!type.IsValueType) return null;
                throw new ArgumentException($"{graph.ModelName}.forward's argument '{parameter.Name}' is of type {type.Name}, but null was given.", "arguments");
            }
            if (type.IsInstanceOfType(value)) return value;
            if (IsNumber(type) && IsNumber(value.GetType()))
            {
                try
                {
                    var converted = System.Convert.ChangeType(value, type, CultureInfo.InvariantCulture);
                    // Only where nothing is lost: 3 for a double, not 2.5 for an int.
                    if (System.Convert.ToDecimal(converted, CultureInfo.InvariantCulture) == System.Convert.ToDecimal(value, CultureInfo.InvariantCulture)) return converted;
                }
                catch (Exception e) when (e is OverflowException or InvalidCastException)
                {
                }
            }
            throw new ArgumentException(
                $"{graph.ModelName}.forward's argument '{parameter.Name}' is of type {type.Name}, but {Show(value)} was given: pass a value of that type.", "arguments");
        }

        private static bool IsNumber(Type type) =>
            Type.GetTypeCode(type) is TypeCode.SByte or TypeCode.Byte or TypeCode.Int16 or TypeCode.UInt16 or TypeCode.Int32 or TypeCode.UInt32
                or TypeCode.Int64 or TypeCode.UInt64 or TypeCode.Single or TypeCode.Double && !type.IsEnum;

        private static string Describe(IReadOnlyList<ModelArgument> arguments) =>
            string.Join(", ", arguments.Select(a => $"'{a.Name}' ({a.Type.Name})"));

        private static string Show(object? value) => value switch
        {
            null => "null",
            string s => $"\"{s}\" (String)",
            Tensor => "a tensor",
            _ => $"{System.Convert.ToString(value, CultureInfo.InvariantCulture)} ({value.GetType().Name})",
        };
    }
}
