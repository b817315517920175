// The namespaces nearly every file of the generator uses, once for all of them (the files' own using lists were the
// same six lines over and over).
global using System;
global using System.Collections.Generic;
global using System.Linq;
global using Microsoft.CodeAnalysis;
global using Microsoft.CodeAnalysis.CSharp;
global using Microsoft.CodeAnalysis.CSharp.Syntax;
global using Pippy.Generators.Diagnostics;
global using Pippy.Generators.Model;
