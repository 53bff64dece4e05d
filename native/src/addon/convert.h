// JS → engine conversions for the contract in main/engine/native-types.ts. Every helper
// throws a Napi::TypeError naming the offending field, e.g. "config.headDim must be ...".
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/kv_store.h"
#include "engine/lora.h"
#include "engine/sampling.h"
#include "engine/weights.h"

namespace al::addon {

Napi::Object to_object(const Napi::Value& v, const std::string& what);
int to_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max);
// A non-negative integer up to 2^53 (byte offsets and sizes).
uint64_t to_u64(const Napi::Value& v, const std::string& what);
double to_number(const Napi::Value& v, const std::string& what);
bool to_bool(const Napi::Value& v, const std::string& what);
std::string to_string(const Napi::Value& v, const std::string& what);
// null or undefined → an empty Function; otherwise the value must be a function.
Napi::Function to_optional_function(const Napi::Value& v, const std::string& what);

Config parse_config(const Napi::Value& v);
TensorRef parse_tensor_ref(const Napi::Value& v, const std::string& what);
std::vector<TensorRef> parse_tensor_refs(const Napi::Value& v);
std::vector<LoraModuleSpec> parse_adapter_spec(const Napi::Value& v);
SamplingParams parse_sampling(const Napi::Value& v, const std::string& what);
// A NativeStrategySpec; hybrid's exactLayers must be distinct layers of a num_layers model.
StrategySpec parse_strategy(const Napi::Value& v, int num_layers);

}  // namespace al::addon
