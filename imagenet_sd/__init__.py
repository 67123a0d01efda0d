"""imagenet-sd: synthetic ImageNet clones with text-to-image diffusion, trained and measured on real images."""
