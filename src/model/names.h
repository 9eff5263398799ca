// The other spellings under which upstream files store a tensor of ours: with or without a
// DDP "module." prefix, PEFT's "base_model.model." wrapping and ".default" adapter infix, the
// "gated_cross_attn_layers.N" alias of the cross-attention blocks, and plain HF LLaMA layer names
// (without FlamingoLayer's "decoder_layer.").
#ifndef MM_NAMES_H
#define MM_NAMES_H

#define MM_NAME_MAX 192
#define MM_MAX_ALIASES 16

// Writes the canonical name first, then its aliases; returns how many were written.
int names_aliases(const char *canonical, char out[][MM_NAME_MAX], int max);

#endif
