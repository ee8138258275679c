// A classic-BPF interpreter for seccomp programs, so tests and `pw check` can ask "what does this exported
// filter do with this syscall?" in-process, without installing it. Covers the instructions
// the kernel's seccomp checker accepts; anything else fails the test loudly.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace pw::seccomp {

inline std::uint32_t bpf_eval(const std::vector<sock_filter>& prog, const seccomp_data& data) {
  std::uint32_t a = 0;
  std::uint32_t x = 0;
  std::uint32_t mem[BPF_MEMWORDS] = {};
  auto fail = [](const std::string& what, std::size_t pc) -> std::uint32_t {
    throw std::runtime_error("bpf_eval: " + what + " at pc " + std::to_string(pc));
  };
  std::size_t pc = 0;
  while (pc < prog.size()) {
    const sock_filter& in = prog[pc];
    const std::uint32_t k = in.k;
    const std::size_t next = pc + 1;
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
      case BPF_LDX: {
        std::uint32_t v = 0;
        switch (BPF_MODE(in.code)) {
          case BPF_ABS:
            // seccomp only allows aligned 32-bit loads inside seccomp_data.
            if (BPF_CLASS(in.code) != BPF_LD || BPF_SIZE(in.code) != BPF_W || k % 4 != 0 ||
                k + 4 > sizeof(seccomp_data))
              return fail("bad absolute load", pc);
            std::memcpy(&v, reinterpret_cast<const char*>(&data) + k, 4);
            break;
          case BPF_IMM:
            v = k;
            break;
          case BPF_MEM:
            if (k >= BPF_MEMWORDS) return fail("scratch index out of range", pc);
            v = mem[k];
            break;
          case BPF_LEN:
            v = sizeof(seccomp_data);
            break;
          default:
            return fail("unsupported load mode", pc);
        }
        (BPF_CLASS(in.code) == BPF_LD ? a : x) = v;
        pc = next;
        break;
      }
      case BPF_ST:
      case BPF_STX:
        if (k >= BPF_MEMWORDS) return fail("scratch index out of range", pc);
        mem[k] = BPF_CLASS(in.code) == BPF_ST ? a : x;
        pc = next;
        break;
      case BPF_ALU: {
        const std::uint32_t src = BPF_SRC(in.code) == BPF_X ? x : k;
        switch (BPF_OP(in.code)) {
          case BPF_ADD: a += src; break;
          case BPF_SUB: a -= src; break;
          case BPF_MUL: a *= src; break;
          case BPF_DIV:
            if (src == 0) return 0;  // the kernel aborts the program with "kill"
            a /= src;
            break;
          case BPF_MOD:
            if (src == 0) return 0;
            a %= src;
            break;
          case BPF_AND: a &= src; break;
          case BPF_OR: a |= src; break;
          case BPF_XOR: a ^= src; break;
          case BPF_LSH: a = src < 32 ? a << src : 0; break;
          case BPF_RSH: a = src < 32 ? a >> src : 0; break;
          case BPF_NEG: a = 0u - a; break;
          default: return fail("unsupported ALU op", pc);
        }
        pc = next;
        break;
      }
      case BPF_JMP: {
        if (BPF_OP(in.code) == BPF_JA) {
          pc = next + k;
          break;
        }
        const std::uint32_t src = BPF_SRC(in.code) == BPF_X ? x : k;
        bool taken = false;
        switch (BPF_OP(in.code)) {
          case BPF_JEQ: taken = a == src; break;
          case BPF_JGT: taken = a > src; break;
          case BPF_JGE: taken = a >= src; break;
          case BPF_JSET: taken = (a & src) != 0; break;
          default: return fail("unsupported jump", pc);
        }
        pc = next + (taken ? in.jt : in.jf);
        break;
      }
      case BPF_RET:
        if (BPF_RVAL(in.code) == BPF_K) return k;
        if (BPF_RVAL(in.code) == BPF_A) return a;
        return fail("unsupported return", pc);
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX) {
          x = a;
        } else if (BPF_MISCOP(in.code) == BPF_TXA) {
          a = x;
        } else {
          return fail("unsupported misc op", pc);
        }
        pc = next;
        break;
      default:
        return fail("unknown instruction class", pc);
    }
  }
  return fail("ran off the end of the program", pc);
}

// The filter's verdict on one call: syscall `nr` of `arch` with its first two arguments.
inline std::uint32_t bpf_eval_call(const std::vector<sock_filter>& prog, long nr, std::uint64_t a0,
                                   std::uint64_t a1, std::uint32_t arch) {
  seccomp_data d{};
  d.nr = static_cast<int>(nr);
  d.arch = arch;
  d.instruction_pointer = 0x401000;
  d.args[0] = a0;
  d.args[1] = a1;
  return bpf_eval(prog, d);
}

}  // namespace pw::seccomp
