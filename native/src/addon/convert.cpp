#include "addon/convert.h"

#include <cmath>
#include <limits>

namespace al::addon {

namespace {

std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: {
      const double d = v.As<Napi::Number>().DoubleValue();
      if (std::floor(d) == d && std::abs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
      return std::to_string(d);
    }
    case napi_string: return "\"" + v.As<Napi::String>().Utf8Value() + "\"";
    case napi_function: return "a function";
    default: return v.IsArray() ? "an array" : "an object";
  }
}

[[noreturn]] void fail(const Napi::Value& v, const std::string& what, const std::string& must) {
  throw Napi::TypeError::New(v.Env(), what + " must be " + must + " (got " + describe(v) + ")");
}

Napi::Value get(const Napi::Object& o, const char* key) { return o.Get(key); }

}  // namespace

Napi::Object to_object(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject()) fail(v, what, "an object");
  return v.As<Napi::Object>();
}

double to_number(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) fail(v, what, "a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(v, what, "a finite number");
  return d;
}

int to_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max) {
  const std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.IsNumber()) fail(v, what, range);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::floor(d) == d) || d < static_cast<double>(min) || d > static_cast<double>(max)) fail(v, what, range);
  return static_cast<int>(d);
}

uint64_t to_u64(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) fail(v, what, "a non-negative integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::floor(d) == d) || d < 0 || d > 9007199254740992.0) fail(v, what, "a non-negative integer");
  return static_cast<uint64_t>(d);
}

bool to_bool(const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) fail(v, what, "a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string to_string(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) fail(v, what, "a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Function to_optional_function(const Napi::Value& v, const std::string& what) {
  if (v.IsNull() || v.IsUndefined()) return Napi::Function();
  if (!v.IsFunction()) fail(v, what, "a function or null");
  return v.As<Napi::Function>();
}

Config parse_config(const Napi::Value& v) {
  const Napi::Object o = to_object(v, "config");
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  auto i = [&](const char* key) { return to_int(get(o, key), std::string("config.") + key, 1, kMax); };
  Config c;
  c.vocab_size = i("vocabSize");
  c.hidden_size = i("hiddenSize");
  c.intermediate_size = i("intermediateSize");
  c.num_layers = i("numLayers");
  c.num_heads = i("numHeads");
  c.num_kv_heads = i("numKvHeads");
  c.head_dim = i("headDim");
  c.max_position_embeddings = i("maxPositionEmbeddings");
  c.rms_norm_eps = static_cast<float>(to_number(get(o, "rmsNormEps"), "config.rmsNormEps"));
  c.rope_theta = to_number(get(o, "ropeTheta"), "config.ropeTheta");
  c.tie_word_embeddings = to_bool(get(o, "tieWordEmbeddings"), "config.tieWordEmbeddings");
  c.attention_bias = to_bool(get(o, "attentionBias"), "config.attentionBias");
  // Optional: the compute dtype ('fp32' when absent, so existing callers are unchanged).
  const Napi::Value dt = o.Get("dtype");
  if (!dt.IsUndefined() && !dt.IsNull()) {
    const std::string d = to_string(dt, "config.dtype");
    if (d == "fp32") {
      c.dtype = ComputeType::F32;
    } else if (d == "bf16") {
      c.dtype = ComputeType::BF16;
    } else if (d == "fp16") {
      c.dtype = ComputeType::F16;
    } else {
      throw Napi::TypeError::New(v.Env(), "config.dtype must be 'fp32', 'bf16' or 'fp16' (got \"" + d + "\")");
    }
  }

  const Napi::Object rs = to_object(get(o, "ropeScaling"), "config.ropeScaling");
  const std::string type = to_string(get(rs, "type"), "config.ropeScaling.type");
  auto num = [&](const char* key) { return to_number(get(rs, key), std::string("config.ropeScaling.") + key); };
  if (type == "default") {
    c.rope_scaling.type = RopeScalingType::Default;
  } else if (type == "linear") {
    c.rope_scaling.type = RopeScalingType::Linear;
    c.rope_scaling.factor = num("factor");
  } else if (type == "llama3") {
    c.rope_scaling.type = RopeScalingType::Llama3;
    c.rope_scaling.factor = num("factor");
    c.rope_scaling.low_freq_factor = num("lowFreqFactor");
    c.rope_scaling.high_freq_factor = num("highFreqFactor");
    c.rope_scaling.original_max_position_embeddings = num("originalMaxPositionEmbeddings");
  } else {
    throw Napi::TypeError::New(v.Env(), "config.ropeScaling.type must be 'default', 'linear' or 'llama3' (got \"" +
                                            type + "\")");
  }
  return c;
}

TensorRef parse_tensor_ref(const Napi::Value& v, const std::string& what) {
  const Napi::Object o = to_object(v, what);
  TensorRef t;
  t.name = to_string(get(o, "name"), what + ".name");
  const std::string w = what + " ('" + t.name + "')";
  t.file = to_string(get(o, "file"), w + ".file");
  t.offset = to_u64(get(o, "offset"), w + ".offset");
  t.nbytes = to_u64(get(o, "nbytes"), w + ".nbytes");
  const std::string dtype = to_string(get(o, "dtype"), w + ".dtype");
  if (dtype == "F32") {
    t.dtype = DType::F32;
  } else if (dtype == "F16") {
    t.dtype = DType::F16;
  } else if (dtype == "BF16") {
    t.dtype = DType::BF16;
  } else {
    throw Napi::TypeError::New(v.Env(), w + ".dtype must be F32, F16 or BF16 (got \"" + dtype +
                                            "\"); convert the checkpoint to one of these");
  }
  const Napi::Value shape = get(o, "shape");
  if (!shape.IsArray()) fail(shape, w + ".shape", "an array of integers");
  const Napi::Array a = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    t.shape.push_back(to_int(a.Get(i), w + ".shape[" + std::to_string(i) + "]", 0,
                             std::numeric_limits<int32_t>::max()));
  }
  return t;
}

std::vector<TensorRef> parse_tensor_refs(const Napi::Value& v) {
  if (!v.IsArray()) fail(v, "tensors", "an array of tensor refs");
  const Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorRef> refs;
  refs.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) refs.push_back(parse_tensor_ref(a.Get(i), "tensors[" + std::to_string(i) + "]"));
  return refs;
}

std::vector<LoraModuleSpec> parse_adapter_spec(const Napi::Value& v) {
  const Napi::Object spec = to_object(v, "adapter spec");
  const Napi::Value mods = get(spec, "modules");
  if (!mods.IsArray()) fail(mods, "spec.modules", "an array");
  const Napi::Array a = mods.As<Napi::Array>();
  std::vector<LoraModuleSpec> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const std::string w = "spec.modules[" + std::to_string(i) + "]";
    const Napi::Object m = to_object(a.Get(i), w);
    LoraModuleSpec s;
    s.layer = to_int(get(m, "layer"), w + ".layer", 0, std::numeric_limits<int32_t>::max());
    const std::string module = to_string(get(m, "module"), w + ".module");
    const auto target = lora_target_from_name(module);
    if (!target) {
      throw Napi::TypeError::New(v.Env(), w + ".module must be one of q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                              "up_proj, down_proj (got \"" + module + "\")");
    }
    s.target = *target;
    s.rank = to_int(get(m, "rank"), w + ".rank", 1, std::numeric_limits<int32_t>::max());
    s.scale = static_cast<float>(to_number(get(m, "scale"), w + ".scale"));
    s.a = parse_tensor_ref(get(m, "a"), w + ".a");
    s.b = parse_tensor_ref(get(m, "b"), w + ".b");
    out.push_back(std::move(s));
  }
  return out;
}

SamplingParams parse_sampling(const Napi::Value& v, const std::string& what) {
  const Napi::Object o = to_object(v, what);
  SamplingParams p;
  const double t = to_number(get(o, "temperature"), what + ".temperature");
  if (t < 0) fail(get(o, "temperature"), what + ".temperature", "0 (greedy) or positive");
  const double top_p = to_number(get(o, "topP"), what + ".topP");
  if (!(top_p > 0 && top_p <= 1)) fail(get(o, "topP"), what + ".topP", "in (0, 1]");
  const Napi::Value seed = get(o, "seed");
  const double s = to_number(seed, what + ".seed");
  if (std::floor(s) != s || std::abs(s) > 9007199254740992.0) fail(seed, what + ".seed", "a safe integer");
  p.temperature = static_cast<float>(t);
  p.top_p = static_cast<float>(top_p);
  p.seed = static_cast<uint64_t>(static_cast<int64_t>(s));  // negative seeds wrap, still deterministic
  return p;
}

StrategySpec parse_strategy(const Napi::Value& v, int num_layers) {
  const Napi::Object o = to_object(v, "strategy");
  const std::string kind = to_string(get(o, "kind"), "strategy.kind");
  StrategySpec s;
  if (kind == "base") {
    s.kind = StrategyKind::Base;
  } else if (kind == "seed-minikv") {
    s.kind = StrategyKind::SeedMiniKv;
  } else if (kind == "lragent") {
    s.kind = StrategyKind::LrAgent;
  } else if (kind == "delta-int8") {
    s.kind = StrategyKind::DeltaInt8;
  } else if (kind == "delta-int4") {
    s.kind = StrategyKind::DeltaInt4;
  } else if (kind == "lowrank") {
    s.kind = StrategyKind::LowRank;
    s.rank = to_int(get(o, "rank"), "strategy.rank", 1, std::numeric_limits<int32_t>::max());
  } else if (kind == "hybrid") {
    s.kind = StrategyKind::Hybrid;
    const Napi::Value layers = get(o, "exactLayers");
    if (!layers.IsArray()) fail(layers, "strategy.exactLayers", "an array of layer indices");
    const Napi::Array a = layers.As<Napi::Array>();
    std::vector<bool> seen(num_layers, false);
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const int l = to_int(a.Get(i), "strategy.exactLayers[" + std::to_string(i) + "]", 0, num_layers - 1);
      if (seen[l]) {
        throw Napi::TypeError::New(v.Env(), "strategy.exactLayers lists layer " + std::to_string(l) + " twice");
      }
      seen[l] = true;
      s.exact_layers.push_back(l);
    }
  } else if (kind == "pca") {
    s.kind = StrategyKind::Pca;
    const double b = to_number(get(o, "bitsPerValue"), "strategy.bitsPerValue");
    if (!(b > 0.0 && b <= 16.0)) fail(get(o, "bitsPerValue"), "strategy.bitsPerValue", "in (0, 16]");
    s.bits_per_value = b;
    const Napi::Value w = get(o, "weights");
    if (!w.IsUndefined() && !w.IsNull()) {
      if (!w.IsArray() || w.As<Napi::Array>().Length() != static_cast<uint32_t>(2 * num_layers)) {
        fail(w, "strategy.weights", "an array of " + std::to_string(2 * num_layers) + " positive numbers (K and V of every layer)");
      }
      const Napi::Array a = w.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const double x = to_number(a.Get(i), "strategy.weights[" + std::to_string(i) + "]");
        if (!(x > 0.0) || !std::isfinite(x)) fail(a.Get(i), "strategy.weights[" + std::to_string(i) + "]", "positive and finite");
        s.weights.push_back(x);
      }
    }
    const Napi::Value ep = get(o, "exactParts");
    if (!ep.IsUndefined() && !ep.IsNull()) {
      if (!ep.IsArray()) fail(ep, "strategy.exactParts", "an array of part indices (2·layer + 0 for K, 1 for V)");
      const Napi::Array a = ep.As<Napi::Array>();
      std::vector<bool> seen(2 * num_layers, false);
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const int p = to_int(a.Get(i), "strategy.exactParts[" + std::to_string(i) + "]", 0, 2 * num_layers - 1);
        if (seen[p]) throw Napi::TypeError::New(v.Env(), "strategy.exactParts lists part " + std::to_string(p) + " twice");
        seen[p] = true;
        s.exact_parts.push_back(p);
      }
    }
  } else if (kind == "exact") {
    throw Napi::TypeError::New(v.Env(), "strategy.kind 'exact' needs no store: the exact cache is the reference");
  } else {
    throw Napi::TypeError::New(v.Env(), "strategy.kind must be one of base, seed-minikv, lragent, delta-int8, "
                                        "delta-int4, lowrank, hybrid, pca (got \"" + kind + "\")");
  }
  return s;
}

}  // namespace al::addon
